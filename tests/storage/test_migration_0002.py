"""Revision 0002_management applied to a database that already holds data, and undone."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from winmdm.storage import create_engine_for, current_revision
from winmdm.storage.database import downgrade, migrate

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MANAGEMENT_TABLES = {
    *("commands", "host_commands", "mdm_sessions", "profiles"),
    *("host_profiles", "agent_package", "host_agent", "activities"),
}


def _move_to(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    (downgrade if down else migrate)(engine, revision)


def test_upgrade_keeps_hosts_and_downgrade_undoes(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        _move_to(engine, "0001_initial")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO hosts (uuid, display_name, hw_dev_id, mdm_status, created_at, updated_at) "
                    "VALUES ('u-1', 'DESKTOP-OLD', 'HW-1', 'on', :at, :at)"
                ),
                {"at": T0},
            )
            host_id = conn.execute(sa.text("SELECT id FROM hosts")).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO enrollments (host_id, device_id, enrollment_type, token_kind, context, "
                    "extra, dm_username, dm_password_digest, dm_server_secret, dm_nonce, active, created_at) "
                    "VALUES (:host_id, 'DEV-1', 'Full', 'entra_jwt', '[]', '{}', 'u', 'd', 's', 'n', "
                    "true, :at)"
                ),
                {"host_id": host_id, "at": T0},
            )

        _move_to(engine, "0002_management")
        assert current_revision(engine) == "0002_management"
        assert set(sa.inspect(engine).get_table_names()) >= MANAGEMENT_TABLES
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT id, uuid, display_name, manufacturer, model, language, dm_version FROM hosts")
            ).one()
            assert tuple(row) == (host_id, "u-1", "DESKTOP-OLD", None, None, None, None)

        _move_to(engine, "0001_initial", down=True)
        assert current_revision(engine) == "0001_initial"
        inspector = sa.inspect(engine)
        assert not MANAGEMENT_TABLES & set(inspector.get_table_names())
        assert "manufacturer" not in {column["name"] for column in inspector.get_columns("hosts")}
        with engine.connect() as conn:
            # Dropping the columns must not have rebuilt hosts and cascaded into enrollments.
            assert conn.execute(sa.text("SELECT uuid FROM hosts")).scalar_one() == "u-1"
            assert conn.execute(sa.text("SELECT device_id FROM enrollments")).scalar_one() == "DEV-1"

        _move_to(engine, "0002_management")
        assert current_revision(engine) == "0002_management"
    finally:
        engine.dispose()
