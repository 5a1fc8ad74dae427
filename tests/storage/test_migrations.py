"""Migrations: idempotent, at head, and creating exactly what schema.py describes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from winmdm.errors import ConfigError
from winmdm.storage import create_engine_for, current_revision, head_revision, migrate
from winmdm.storage.schema import metadata


def test_fresh_database_has_no_revision(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision() == "0009_host_ids"
        tables = set(sa.inspect(engine).get_table_names())
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert set(sa.inspect(engine).get_table_names()) == tables
        assert {"teams", "hosts", "enrollments", "device_certificates"} <= tables
        assert {"commands", "host_commands", "mdm_sessions", "profiles", "host_profiles"} <= tables
        assert {"agent_package", "host_agent", "activities"} <= tables
        assert {"enrollment_tokens_used", "enrollment_secrets"} <= tables
    finally:
        engine.dispose()


def test_migrated_schema_matches_metadata(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path}/nested/dir/winmdm.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
        assert (tmp_path / "nested" / "dir" / "winmdm.db").exists()
    finally:
        engine.dispose()


def test_postgresql_urls_use_psycopg3() -> None:
    for url in ("postgresql://u:p@db/winmdm", "postgres://u:p@db/winmdm"):
        engine = create_engine_for(url)
        assert engine.url.drivername == "postgresql+psycopg"
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://u:secret@db/winmdm", "postgresql://u:secret@127.0.0.1:1/winmdm"],
)
def test_bad_urls_are_config_errors_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        engine = create_engine_for(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
    assert raised.value.setting == "WINMDM_DATABASE_URL"
    assert "secret" not in str(raised.value)
