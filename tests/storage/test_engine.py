"""Engine settings (storage/database.py): SQLite's write lock at BEGIN, PostgreSQL's idle ping."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from winmdm.storage import SQLStorage, create_engine_for, database, migrate

try:
    from tests.databases import fresh_database_url
except ModuleNotFoundError:
    from databases import fresh_database_url  # type: ignore[no-redef]


def test_sqlite_transaction_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "winmdm.db"
    storage = SQLStorage(create_engine_for(f"sqlite:///{path}"))
    migrate(storage.engine)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        # No statement runs in the transaction: BEGIN IMMEDIATE alone holds the lock.
        with storage.transaction(), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        storage.close()


def test_sqlite_busy_begin_is_a_sqlalchemy_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The HTTP edges translate SQLAlchemyError; a raw sqlite3 error from BEGIN would escape them.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "winmdm.db"
    storage = SQLStorage(create_engine_for(f"sqlite:///{path}"))
    migrate(storage.engine)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError, match="locked"), storage.transaction():
            pass
        other.execute("ROLLBACK")
        with storage.transaction() as tx:
            assert tx.hosts.get(1) is None
    finally:
        other.close()
        storage.close()


def test_sqlite_engine_has_no_per_statement_events(tmp_path: Path) -> None:
    # Any connection event makes SQLAlchemy dispatch events around every statement.
    engine = create_engine_for(f"sqlite:///{tmp_path / 'winmdm.db'}")
    try:
        assert not engine._has_events
    finally:
        engine.dispose()


@pytest.fixture
def postgres_engine(postgres_server_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    with fresh_database_url("postgresql", tmp_dir=tmp_path, postgres_url=postgres_server_url) as url:
        engine = create_engine_for(url)
        try:
            yield engine
        finally:
            engine.dispose()


def _terminate_pooled_connection(engine: sa.Engine) -> None:
    """Kill the server side of the engine's one pooled connection, as a restart would."""
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    killer = sa.create_engine(engine.url, poolclass=sa.NullPool)
    try:
        with killer.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        killer.dispose()


def test_postgres_idle_connection_is_pinged_and_replaced(
    postgres_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _terminate_pooled_connection(postgres_engine)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle
    with postgres_engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1


def test_postgres_recently_used_connection_is_not_pinged(postgres_engine: sa.Engine) -> None:
    # The price of skipping the ping: a connection that died since its last use a moment ago
    # fails once; SQLAlchemy then replaces the pool and the next transaction works.
    _terminate_pooled_connection(postgres_engine)
    with pytest.raises(sa.exc.OperationalError) as raised, postgres_engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert raised.value.connection_invalidated
    with postgres_engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
