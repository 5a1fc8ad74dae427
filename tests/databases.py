"""Fresh, empty databases for tests, SQLite or PostgreSQL.

Plain functions so any test (or helper spawning a server process) can get a database URL; the
fixtures in conftest.py are built on them. Every URL returned is what an admin would put in
WINMDM_DATABASE_URL and is accepted by `winmdm.storage.create_engine_for`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import secrets
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from winmdm.storage.database import create_engine_for, migrate

Kind = Literal["sqlite", "postgresql"]
KINDS: tuple[Kind, ...] = ("sqlite", "postgresql")
POSTGRES_URL_ENV = "WINMDM_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL for the tests: the suite must fail, never skip (design.md §3)."""


def start_pgserver() -> tuple[str, Any]:
    """Start a throwaway PostgreSQL with `pgserver`; returns (server URL, server handle).

    The data folder lives under /tmp: as root, pgserver runs PostgreSQL as a `pgserver` user and
    makes the data folder's parents world-readable (design.md §5). Call `handle.cleanup()` to
    stop it and delete its data.
    """
    with warnings.catch_warnings():
        # platformdirs complains about XDG_RUNTIME_DIR in containers; harmless here.
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as exc:
            raise PostgresUnavailable(
                f"pgserver is not installed ({exc}); install the dev extras "
                f"(pip install -e '.[dev]') or set {POSTGRES_URL_ENV} to a PostgreSQL server URL"
            ) from exc
        data_dir = tempfile.mkdtemp(prefix="winmdm-pg-", dir="/tmp")
        try:
            server = pgserver.get_server(data_dir, cleanup_mode="delete")
        except Exception as exc:
            raise PostgresUnavailable(
                f"pgserver could not start PostgreSQL in {data_dir}: {exc!r}; "
                f"set {POSTGRES_URL_ENV} to a reachable PostgreSQL server URL instead"
            ) from exc
    # get_uri() gives postgresql://postgres:@/postgres?host=<socket dir>: psycopg 3 reads the
    # host query parameter as the unix socket folder; create_engine_for picks psycopg 3.
    return server.get_uri(), server


def _admin_engine(server_url: str) -> sa.Engine:
    engine = create_engine_for(server_url)
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def check_postgres(server_url: str) -> None:
    """Raise PostgresUnavailable with the reason when the server does not answer."""
    engine = create_engine_for(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        raise PostgresUnavailable(f"cannot reach PostgreSQL at {_safe(server_url)}: {exc}") from exc
    finally:
        engine.dispose()


def _safe(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def create_postgres_database(server_url: str, *, template: str | None = None) -> str:
    """CREATE DATABASE winmdm_test_<random> on the server (a copy of `template`, when named);
    returns its URL."""
    name = f"winmdm_test_{secrets.token_hex(6)}"
    engine = _admin_engine(server_url)
    try:
        with engine.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    finally:
        engine.dispose()
    return sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(database_url: str) -> None:
    """Drop a database made by create_postgres_database, even with connections still open."""
    url = sa.make_url(database_url)
    name = url.database
    assert name and name.startswith("winmdm_test_"), f"refusing to drop {name!r}"
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)
    engine = _admin_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@functools.cache
def _sqlite_template() -> Path:
    """A SQLite file migrated to head, once per test process."""
    path = Path(tempfile.mkdtemp(prefix="winmdm-test-template-")) / "template.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # all of it in the file, none in a WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@functools.cache
def _postgres_template(server_url: str) -> str:
    """A database migrated to head on this server, once per test process: new databases are
    made from it (CREATE DATABASE ... TEMPLATE), which is far quicker than migrating each."""
    url = create_postgres_database(server_url)
    engine = create_engine_for(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    atexit.register(_drop_quietly, url)
    return sa.make_url(url).database or ""


def _drop_quietly(url: str) -> None:
    """At exit: a throwaway server may already be gone, taking the template with it."""
    with contextlib.suppress(Exception):
        drop_postgres_database(url)


@contextmanager
def fresh_database_url(
    kind: Kind, *, tmp_dir: Path, postgres_url: str | None = None, migrated: bool = False
) -> Iterator[str]:
    """A URL to a new database of this kind, removed afterwards: empty, or (`migrated`) at the
    newest schema, copied from a template migrated once per run.

    SQLite: a file in tmp_dir (left for tmp_dir's owner to clean). PostgreSQL: a new database
    on the server at postgres_url, dropped on exit.
    """
    if kind == "sqlite":
        path = Path(tmp_dir) / f"winmdm-{secrets.token_hex(4)}.db"
        if migrated:
            shutil.copyfile(_sqlite_template(), path)
            os.chmod(path, 0o600)
        yield f"sqlite:///{path}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}; use one of {KINDS}")
    if not postgres_url:
        raise PostgresUnavailable("a PostgreSQL database was asked for without a server URL")
    url = create_postgres_database(
        postgres_url, template=_postgres_template(postgres_url) if migrated else None
    )
    try:
        yield url
    finally:
        drop_postgres_database(url)
