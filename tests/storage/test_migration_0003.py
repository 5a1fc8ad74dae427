"""Revision 0003_identity on a database full of devices, and undone, on SQLite and PostgreSQL.

On SQLite 0003 rebuilds enrollments (a CHECK constraint changes); with foreign keys on, the
DROP of the old table would cascade-delete every device certificate. These tests hold every
row of every table to account across the upgrade and the downgrade.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError

from winmdm.errors import ConfigError
from winmdm.storage import SQLStorage, create_engine_for, current_revision
from winmdm.storage.database import MIGRATIONS_DIR, downgrade, migrate
from winmdm.storage.schema import (
    activities,
    commands,
    device_certificates,
    enrollments,
    host_commands,
    hosts,
    teams,
)

# mdm_sessions as revisions 0002 to 0005 had it (0006 made it anew, per enrollment).
MDM_SESSIONS_0002 = sa.table(
    "mdm_sessions",
    *(sa.column(name) for name in ("host_id", "session_id", "client_msg_id", "server_msg_id")),
    sa.column("last_response", sa.LargeBinary),
    sa.column("authenticated"),
    *(sa.column(name, sa.JSON) for name in ("sent", "pending_chunks", "incoming")),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TABLES_AT_0002 = (
    *("teams", "hosts", "enrollments", "device_certificates", "commands", "host_commands"),
    *("mdm_sessions", "profiles", "host_profiles", "agent_package", "host_agent", "activities"),
)


@pytest.fixture
def engine(database_url: str):
    engine = create_engine_for(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _enrollment_values(host_id: int, device_id: str, token_kind: str = "entra_jwt") -> dict[str, Any]:
    return {
        "host_id": host_id,
        "device_id": device_id,
        "hw_dev_id": "HW-1",
        "enrollment_type": "Device",
        "not_in_oobe": False,
        "ux_initiated": None,
        "device_name": "DESKTOP-OLD",
        "upn": "alice@corp.example",
        "token_kind": token_kind,
        "context": [["MAC", "00-11"], ["MAC", "22-33"]],
        "extra": {"k": "v"},
        "dm_username": "dm-user",
        "dm_password_digest": "digest",
        "dm_server_secret": "server-secret",
        "dm_nonce": "nonce",
        "active": True,
        "created_at": T0,
    }


def _fill_at_0002(engine: sa.Engine) -> dict[str, int]:
    """A host in a team with two enrollments, two certificates, a queued command, a session and
    an activity; a second host with nothing. Only columns that exist at 0002."""
    with engine.begin() as conn:
        team_id = conn.execute(
            teams.insert().values(name="Finance", created_at=T0).returning(teams.c.id)
        ).scalar_one()
        host_values = {"display_name": "DESKTOP-OLD", "mdm_status": "on", "created_at": T0, "updated_at": T0}
        host_id = conn.execute(
            hosts.insert()
            .values(uuid="u-1", hw_dev_id="HW-1", device_id="DEV-2", serial="SN-1", team_id=team_id)
            .values(manufacturer="Contoso", last_seen_at=T0, **host_values)
            .returning(hosts.c.id)
        ).scalar_one()
        conn.execute(hosts.insert().values(uuid="u-2", **host_values))
        old = conn.execute(
            enrollments.insert()
            .values(_enrollment_values(host_id, "DEV-1") | {"active": False})
            .returning(enrollments.c.id)
        ).scalar_one()
        new = conn.execute(
            enrollments.insert()
            .values(_enrollment_values(host_id, "DEV-2", "renewal"))
            .returning(enrollments.c.id)
        ).scalar_one()
        for serial, enrollment_id, status in (("0a", old, "revoked"), ("0b", new, "active")):
            conn.execute(
                device_certificates.insert().values(
                    serial=serial,
                    host_id=host_id,
                    enrollment_id=enrollment_id,
                    thumbprint=serial.upper() * 20,
                    subject=f"CN={serial}",
                    not_before=T0,
                    not_after=T0 + timedelta(days=365),
                    der=b"\x30\x82" + serial.encode(),
                    status=status,
                    first_used_at=T0,
                )
            )
        command_id = conn.execute(
            commands.insert()
            .values(uuid="c-1", kind="reboot", payload="<Exec/>", context={}, created_at=T0)
            .returning(commands.c.id)
        ).scalar_one()
        conn.execute(
            host_commands.insert().values(
                host_id=host_id,
                command_id=command_id,
                state="pending",
                cmd_ids=[],
                replies=[],
                attempts=0,
                queued_at=T0,
            )
        )
        conn.execute(
            MDM_SESSIONS_0002.insert().values(
                host_id=host_id,
                session_id="s-1",
                client_msg_id=3,
                server_msg_id=2,
                last_response=b"<SyncML/>",
                authenticated=True,
                sent={"2": [1, 2]},
                pending_chunks=[],
                incoming=None,
                started_at=T0,
                updated_at=T0,
            )
        )
        conn.execute(activities.insert().values(type="enrolled", host_id=host_id, details={}, created_at=T0))
    return {"team": team_id, "host": host_id, "old": old, "new": new, "command": command_id}


def _dump(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every 0002 table, as the database gives it back (no type conversion)."""
    with engine.connect() as conn:
        return {
            table: [
                dict(row._mapping) for row in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1, 2")
            ]
            for table in TABLES_AT_0002
        }


def _without(dump: dict[str, list[dict[str, Any]]], columns: set[str]) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [{k: v for k, v in row.items() if k not in columns} for row in rows]
        for table, rows in dump.items()
    }


NEW_COLUMNS = {"end_user_auth", "enrollment_kind", "end_user_username"}


def test_upgrade_keeps_every_row_and_downgrade_too(engine: sa.Engine) -> None:
    migrate(engine, "0002_management")
    ids = _fill_at_0002(engine)
    before = _dump(engine)
    assert len(before["device_certificates"]) == 2 and len(before["enrollments"]) == 2

    migrate(engine, "0003_identity")
    assert current_revision(engine) == "0003_identity"
    after = _dump(engine)
    assert _without(after, NEW_COLUMNS) == before
    assert {row["enrollment_kind"] for row in after["enrollments"] + after["hosts"]} == {None}
    assert {row["end_user_username"] for row in after["enrollments"]} == {None}
    assert {bool(row["end_user_auth"]) for row in after["teams"]} == {False}

    # The stores read the upgraded rows back as the domain objects (they speak the newest schema).
    migrate(engine)
    storage = SQLStorage(engine)
    with storage.transaction() as tx:
        host = tx.hosts.get(ids["host"])
        assert host is not None and host.team_id == ids["team"] and host.enrollment_kind is None
        assert [e.id for e in tx.enrollments.list_for_host(ids["host"])] == [ids["old"], ids["new"]]
        assert tx.enrollments.active_for_host(ids["host"]).device_id == "DEV-2"
        certificates = tx.certificates.list_for_host(ids["host"])
        assert [(c.serial, c.enrollment_id) for c in certificates] == [("0a", ids["old"]), ("0b", ids["new"])]
        assert [q.command.uuid for q in tx.commands.list_for_host(ids["host"])] == ["c-1"]
        # Revision 0006 drops sessions in progress (they start over: see test_migration_0006).
        assert tx.sessions.get(ids["new"]) is None
        assert [a.type for a in tx.activities.list(host_id=ids["host"])] == ["enrolled"]
        assert tx.teams.get(ids["team"]).end_user_auth is False

    downgrade(engine, "0002_management")
    assert current_revision(engine) == "0002_management"
    assert _dump(engine) == {**before, "mdm_sessions": []}
    inspector = sa.inspect(engine)
    assert not {"enrollment_tokens_used", "enrollment_secrets"} & set(inspector.get_table_names())
    for table in ("teams", "hosts", "enrollments"):
        assert not NEW_COLUMNS & {column["name"] for column in inspector.get_columns(table)}

    migrate(engine, "0003_identity")
    assert _without(_dump(engine), NEW_COLUMNS) == {**before, "mdm_sessions": []}


def test_rebuilt_enrollments_keeps_its_constraints_indexes_and_foreign_keys(engine: sa.Engine) -> None:
    migrate(engine, "0002_management")
    _fill_at_0002(engine)
    migrate(engine)
    inspector = sa.inspect(engine)
    foreign_keys = {fk["name"]: fk for fk in inspector.get_foreign_keys("enrollments")}
    assert set(foreign_keys) == {"fk_enrollments_host_id_hosts"}
    assert foreign_keys["fk_enrollments_host_id_hosts"]["referred_table"] == "hosts"
    assert foreign_keys["fk_enrollments_host_id_hosts"]["options"]["ondelete"] == "CASCADE"
    assert {index["name"] for index in inspector.get_indexes("enrollments")} == {
        "ix_enrollments_host_id_active",
        "ix_enrollments_device_id",
    }
    assert {check["name"] for check in inspector.get_check_constraints("enrollments")} == {
        "ck_enrollments_enrollment_type",
        "ck_enrollments_token_kind",
        "ck_enrollments_enrollment_kind",
    }
    assert inspector.get_pk_constraint("enrollments")["constrained_columns"] == ["id"]
    # device_certificates still refers to the (renamed) rebuilt table.
    referred = {fk["referred_table"] for fk in inspector.get_foreign_keys("device_certificates")}
    assert referred == {"hosts", "enrollments"}
    checks = {check["name"] for check in inspector.get_check_constraints("hosts")}
    assert {"ck_hosts_mdm_status", "ck_hosts_enrollment_kind"} <= checks

    # And they still act: cascade from hosts through the rebuilt table to the certificates.
    with engine.begin() as conn:
        conn.execute(hosts.delete().where(hosts.c.uuid == "u-1"))
        assert conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(device_certificates)).scalar_one() == 0


def test_widened_token_kind_check(engine: sa.Engine) -> None:
    migrate(engine, "0002_management")
    ids = _fill_at_0002(engine)
    migrate(engine)
    insert = sa.text(
        "INSERT INTO enrollments (host_id, device_id, enrollment_type, token_kind, context, extra, "
        "dm_username, dm_password_digest, dm_server_secret, dm_nonce, active, created_at, enrollment_kind) "
        "VALUES (:host_id, 'DEV-9', 'Full', :token_kind, '[]', '{}', 'u', 'd', 's', 'n', true, :at, :kind)"
    )
    with engine.begin() as conn:
        for kind in ("bulk_secret", "enrollment_token"):
            conn.execute(insert, {"host_id": ids["host"], "token_kind": kind, "at": T0, "kind": "automatic"})
    for token_kind, kind in (("nonsense", "manual"), ("bulk_secret", "sometimes")):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"host_id": ids["host"], "token_kind": token_kind, "at": T0, "kind": kind})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE hosts SET enrollment_kind = 'sometimes'"))


def test_downgrade_refuses_enrollments_0002_cannot_hold(engine: sa.Engine) -> None:
    migrate(engine, "0002_management")
    ids = _fill_at_0002(engine)
    migrate(engine, "0003_identity")
    with engine.begin() as conn:
        conn.execute(enrollments.insert().values(_enrollment_values(ids["host"], "DEV-9", "bulk_secret")))
    with pytest.raises(RuntimeError, match="0002_management cannot store"):
        downgrade(engine, "0002_management")
    assert current_revision(engine) == "0003_identity"
    assert len(_dump(engine)["device_certificates"]) == 2


# --- SQLite: the foreign-key switch around the migration -------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = create_engine_for(f"sqlite:///{tmp_path}/winmdm.db")
    try:
        yield engine
    finally:
        engine.dispose()


def _foreign_keys(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()


def test_sqlite_foreign_keys_are_back_on_after_migrating(sqlite_engine: sa.Engine) -> None:
    migrate(sqlite_engine, "0002_management")
    _fill_at_0002(sqlite_engine)
    migrate(sqlite_engine)
    # One pooled connection: the one the migration ran on.
    assert sqlite_engine.pool.checkedin() == 1
    assert _foreign_keys(sqlite_engine) == 1


def test_sqlite_foreign_keys_are_back_on_after_a_failed_migration(sqlite_engine: sa.Engine) -> None:
    migrate(sqlite_engine, "0002_management")
    ids = _fill_at_0002(sqlite_engine)
    migrate(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(enrollments.insert().values(_enrollment_values(ids["host"], "DEV-9", "bulk_secret")))
    with pytest.raises(RuntimeError):
        downgrade(sqlite_engine, "0002_management")
    assert sqlite_engine.pool.checkedin() == 1
    assert _foreign_keys(sqlite_engine) == 1


def test_sqlite_dangling_reference_rolls_the_migration_back(sqlite_engine: sa.Engine) -> None:
    migrate(sqlite_engine, "0002_management")
    ids = _fill_at_0002(sqlite_engine)
    # A certificate whose enrollment is gone, as foreign keys off would let slip through.
    raw = sqlite3.connect(sqlite_engine.url.database, isolation_level=None)
    try:
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("DELETE FROM enrollments WHERE id = ?", (ids["old"],))
    finally:
        raw.close()
    before = _dump(sqlite_engine)
    with pytest.raises(ConfigError, match="device_certificates"):
        migrate(sqlite_engine)
    assert current_revision(sqlite_engine) == "0002_management"
    assert _dump(sqlite_engine) == before
    assert "enrollment_secrets" not in sa.inspect(sqlite_engine).get_table_names()
    assert _foreign_keys(sqlite_engine) == 1


def test_sqlite_upgrade_with_foreign_keys_on_is_refused(sqlite_engine: sa.Engine) -> None:
    """The alembic command line or any caller not going through migrate(): refused, untouched."""
    migrate(sqlite_engine, "0002_management")
    _fill_at_0002(sqlite_engine)
    before = _dump(sqlite_engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with pytest.raises(RuntimeError, match="foreign keys"), sqlite_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert current_revision(sqlite_engine) == "0002_management"
    assert _dump(sqlite_engine) == before
