"""Engines and migrations: turning `WINMDM_DATABASE_URL` into a ready database.

One laptop process on SQLite or many processes sharing PostgreSQL (design.md §1), so SQLite is
tuned for a few concurrent writers (WAL, busy timeout, BEGIN IMMEDIATE) and PostgreSQL migrations
take an advisory lock so processes starting together do not race each other.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, NoSuchModuleError
from sqlalchemy.exc import OperationalError as SAOperationalError

from winmdm import data_dir
from winmdm.errors import ConfigError, InvalidInput

SETTING = "WINMDM_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# A pooled PostgreSQL connection idle longer than this is pinged before use (see _ping_if_idle).
IDLE_PING_SECONDS = 10.0
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK_ID = 0x57494E4D444D  # "WINMDM"


def _parse_url(url: str) -> URL:
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        # The text may hold a password; say only what kind of thing is wrong.
        raise ConfigError(SETTING, "is not a database URL (expected sqlite:///… or postgresql://…)") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        # psycopg 3 is the driver we ship; `postgres://` is what many hosting providers hand out.
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(SETTING, f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def create_engine_for(url: str) -> Engine:
    """An Engine for a SQLite or PostgreSQL URL, configured the way winmdm needs it.

    Nothing connects yet: `migrate` or the first transaction does, and connection failures there
    become `ConfigError` (see `connect`).
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)
    else:
        try:
            engine = sa.create_engine(parsed)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigError(SETTING, f"cannot use {_safe(parsed)}: {type(exc).__name__}") from None
        _ping_if_idle(engine)
    event.listen(engine, "handle_error", _refuse_unstorable)
    return engine


# SQLSTATEs of values no column can hold: numeric_value_out_of_range (an id beyond int4 on
# PostgreSQL), character_not_in_repertoire, untranslatable_character.
_UNSTORABLE_SQLSTATES = frozenset({"22003", "22021", "22P05"})


def _refuse_unstorable(context: ExceptionContext) -> InvalidInput | None:
    """A value the database cannot hold, which a client can send (a huge id, a NUL byte, a lone
    surrogate), becomes InvalidInput instead of a driver error: nothing a client sends may
    produce a 500 (design.md §3). A dialect event, so it costs nothing until a statement fails.
    """
    error = context.original_exception
    if isinstance(error, OverflowError) or getattr(error, "sqlstate", None) in _UNSTORABLE_SQLSTATES:
        return InvalidInput("a number is out of range: ids and counts are whole numbers below 2147483648")
    if isinstance(error, UnicodeEncodeError) or "NUL (0x00)" in str(error):
        return InvalidInput(
            "text contains a character that cannot be stored (a NUL byte or a lone surrogate)"
        )
    return None


def _ping_if_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has sat idle for a while.

    `pool_pre_ping` pings on every checkout: one more round trip per transaction, which is most
    of an idle check-in's cost on a remote server. A connection used a moment ago is as good as
    a ping; one idle for IDLE_PING_SECONDS may have been closed by a server restart, an idle
    timeout or a proxy, and is pinged and replaced (with every older pooled connection) if dead.
    A restart between two busy moments fails the transactions then in flight, as it would with
    pre-ping; SQLAlchemy then drops the whole pool on that first disconnect error.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["winmdm_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("winmdm_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise InvalidatePoolError(str(exc)) from exc
            raise


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=data_dir.FOLDER_MODE)
            data_dir.prepare_sqlite_file(path)
        except OSError as exc:
            raise ConfigError(SETTING, f"cannot create {path}: {exc.strerror}") from None
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SQLAlchemy's documented
        # recipe): pysqlite's implicit BEGIN breaks SAVEPOINT and transactional DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    # IMMEDIATE takes the write lock up front, where busy_timeout waits for it. A deferred
    # transaction that reads, then writes, fails at once with SQLITE_BUSY under WAL when another
    # writer got in between; nearly every winmdm transaction writes. Sent by this engine's
    # dialect rather than a "begin" event: any connection event makes SQLAlchemy dispatch events
    # around every statement, and exec_driver_sql is a whole statement execution of its own.
    # Errors are wrapped and handled like any statement's (do_begin runs inside SQLAlchemy's
    # error handling).
    engine.dialect.do_begin = _begin_immediate  # type: ignore[method-assign]
    return engine


def _begin_immediate(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.close()


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction; failure to connect becomes a `ConfigError`.

    The message names the database without its password, and the driver's own reason.
    """
    try:
        conn = engine.connect()
    except SAOperationalError as exc:
        raise ConfigError(SETTING, _connect_problem(engine.url, exc)) from None
    with conn, conn.begin():
        yield conn


def _connect_problem(url: URL, exc: SAOperationalError) -> str:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "unknown error"
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return f"cannot connect to {_safe(url)}: {reason}"


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database up to `revision` (the newest by default); one already there is left alone."""
    with _migration(engine) as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Undo revisions down to `revision`, with the same safeguards as `migrate`."""
    with _migration(engine) as conn:
        command.downgrade(_alembic_config(conn), revision)


@contextmanager
def _migration(engine: Engine) -> Iterator[Connection]:
    """One transaction for the whole migration.

    PostgreSQL: an advisory lock, held until the transaction ends; a second process waits, then
    finds head. SQLite: foreign keys off around the transaction, because a batch rebuild DROPs
    the old table, and with foreign keys on that DROP cascade-deletes every row referring to it
    (dropping enrollments would take every device certificate). SQLite ignores the pragma inside
    a transaction, so it is sent on the raw connection before BEGIN, read back, and turned on
    again afterwards whatever happened. `PRAGMA foreign_key_check` then stands in for the
    enforcement skipped: a dangling reference rolls the whole migration back.
    """
    try:
        conn = engine.connect()
    except SAOperationalError as exc:
        raise ConfigError(SETTING, _connect_problem(engine.url, exc)) from None
    with conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                yield conn
            return
        # Nothing has run through SQLAlchemy on `conn` yet: no transaction is open (the engine's
        # connections have isolation_level None, so pysqlite opens none by itself either).
        dbapi_connection = conn.connection.dbapi_connection
        _sqlite_foreign_keys(dbapi_connection, on=False)
        try:
            with conn.begin():
                yield conn
                _check_foreign_keys(conn)
        finally:
            try:
                _sqlite_foreign_keys(dbapi_connection, on=True)
            except BaseException:
                # Never hand a connection without foreign keys back to the pool.
                conn.invalidate()
                raise


def _sqlite_foreign_keys(dbapi_connection: Any, *, on: bool) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        (state,) = cursor.execute("PRAGMA foreign_keys").fetchone()
    finally:
        cursor.close()
    if bool(state) != on:
        raise RuntimeError(
            f"SQLite did not turn foreign keys {'on' if on else 'off'} (a transaction is open)"
        )


def _check_foreign_keys(conn: Connection) -> None:
    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        tables = sorted({str(row[0]) for row in problems})
        raise ConfigError(
            SETTING,
            f"migrating {_safe(conn.engine.url)} would leave {len(problems)} row(s) referring to rows "
            f"that do not exist (in {', '.join(tables)}); nothing was changed",
        )


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()
