"""Revision 0004_admin on a database with devices in it, and undone, on SQLite and PostgreSQL:
an upgraded database reads the Automatic end-user experience and keeps every host."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from winmdm.domain.admin import Role
from winmdm.services.license import FREE
from winmdm.services.settings import MDMSettings, SettingsService
from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import hosts, teams

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NEW_TABLES = {"admins", "admin_tokens", "admin_login_failures", "app_settings"}


def _fill_at_0003(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        team_id = conn.execute(
            teams.insert().values(name="Finance", created_at=T0, end_user_auth=True).returning(teams.c.id)
        ).scalar_one()
        return conn.execute(
            hosts.insert()
            .values(
                uuid="u-1",
                display_name="DESKTOP-1",
                hw_dev_id="HW-1",
                device_id="DEV-1",
                serial="SN-1",
                team_id=team_id,
                mdm_status="on",
                enrollment_kind="automatic",
                created_at=T0,
                updated_at=T0,
            )
            .returning(hosts.c.id)
        ).scalar_one()


def _rows(engine: sa.Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {
            table: [dict(row._mapping) for row in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]
            for table in ("teams", "hosts")
        }


@pytest.mark.parametrize("end_user_auth_setting", [False, True])
def test_upgrade_reads_automatic_and_keeps_the_hosts(engine: sa.Engine, end_user_auth_setting: bool) -> None:
    migrate(engine, "0003_identity")
    host_id = _fill_at_0003(engine)
    before = _rows(engine)

    migrate(engine, "0004_admin")
    assert current_revision(engine) == "0004_admin"
    assert _rows(engine) == before
    migrate(engine)  # the stores speak the newest schema
    storage = SQLStorage(engine)
    settings = SettingsService(
        storage, lambda: T0, FREE, end_user_authentication_default=end_user_auth_setting
    )
    # Automatic (manual off), no migration, Windows MDM on; No team's end-user authentication
    # still follows WINMDM_END_USER_AUTH, as it did at 0003.
    assert settings.get() == MDMSettings(
        windows_enabled_and_configured=True,
        windows_migration_enabled=False,
        enable_turn_on_windows_mdm_manually=False,
        end_user_authentication=end_user_auth_setting,
    )
    with storage.transaction() as tx:
        host = tx.hosts.get(host_id)
        assert host is not None and host.serial == "SN-1" and host.team_id is not None
        assert tx.teams.get(host.team_id).end_user_auth is True
        assert tx.admins.list() == []
        tx.admins.create("alice@corp.example", "hash", Role.ADMIN, at=T0)

    downgrade(engine, "0003_identity")
    assert current_revision(engine) == "0003_identity"
    assert not NEW_TABLES & set(sa.inspect(engine).get_table_names())
    assert _rows(engine) == before

    migrate(engine, "0004_admin")
    assert _rows(engine) == before
    with storage.transaction() as tx:
        assert tx.admins.list() == []  # the downgrade dropped them
        assert tx.settings.read()["enable_turn_on_windows_mdm_manually"] is False


def test_upgrade_creates_the_admin_constraints(engine: sa.Engine) -> None:
    migrate(engine, "0003_identity")
    migrate(engine)
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= NEW_TABLES
    foreign_keys = inspector.get_foreign_keys("admin_tokens")
    assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in foreign_keys] == [
        ("admins", "CASCADE")
    ]
    assert {c["name"] for c in inspector.get_check_constraints("admins")} == {"ck_admins_role"}
    assert {c["name"] for c in inspector.get_check_constraints("admin_tokens")} == {"ck_admin_tokens_kind"}
