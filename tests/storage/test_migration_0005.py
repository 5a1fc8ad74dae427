"""Revision 0005_entra_device on a database with devices in it, and undone, on SQLite and
PostgreSQL: every host stays, with no Entra device id until it enrolls through Entra again."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from winmdm.domain.models import MDMStatus
from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import enrollments, hosts, teams

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENTRA = "2f6a4c1e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"


def _fill_at_0004(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        team_id = conn.execute(
            teams.insert().values(name="Finance", created_at=T0, end_user_auth=True).returning(teams.c.id)
        ).scalar_one()
        host_id = conn.execute(
            hosts.insert()
            .values(
                uuid="u-1",
                display_name="DESKTOP-1",
                hw_dev_id="HW-1",
                device_id="DEV-1",
                serial="SN-1",
                team_id=team_id,
                mdm_status="on",
                idp_username="alice@corp.example",
                enrollment_kind="manual",
                created_at=T0,
                updated_at=T0,
            )
            .returning(hosts.c.id)
        ).scalar_one()
        conn.execute(
            enrollments.insert().values(
                host_id=host_id,
                device_id="DEV-1",
                enrollment_type="Full",
                upn="alice@corp.example",
                token_kind="entra_jwt",
                context=[],
                extra={},
                dm_username="DEV-1",
                dm_password_digest="d",
                dm_server_secret="s",
                dm_nonce="n",
                active=True,
                created_at=T0,
                end_user_username="bob@corp.example",
            )
        )
        return host_id


def _rows(engine: sa.Engine) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {
            table: [dict(row._mapping) for row in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]
            for table in ("teams", "hosts", "enrollments")
        }


def _columns(engine: sa.Engine) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns("hosts")}


def _indexes(engine: sa.Engine) -> set[str]:
    return {index["name"] for index in sa.inspect(engine).get_indexes("hosts")}


def test_upgrade_keeps_every_host_without_an_entra_device_id_and_downgrade_too(engine: sa.Engine) -> None:
    migrate(engine, "0004_admin")
    host_id = _fill_at_0004(engine)
    before = _rows(engine)

    migrate(engine, "0005_entra_device")
    assert current_revision(engine) == "0005_entra_device"
    after = _rows(engine)
    assert [row.pop("entra_device_id") for row in after["hosts"]] == [None]
    assert after == before
    assert "ix_hosts_entra_device_id" in _indexes(engine)

    storage = SQLStorage(engine)
    with storage.transaction() as tx:
        host = tx.hosts.get(host_id)
        assert host is not None and host.entra_device_id is None and host.team_id is not None
        assert tx.hosts.find_by_entra_device_id(ENTRA) is None
        # Its next Entra enrollment records the id; the team and the rest stay.
        tx.hosts.record_enrollment(
            host_id,
            display_name="DESKTOP-1",
            hw_dev_id="HW-1",
            device_id="DEV-1",
            os_version=None,
            os_edition=None,
            idp_username="alice@corp.example",
            mdm_status=MDMStatus.PENDING,
            at=T0,
            entra_device_id=ENTRA,
        )
    with storage.transaction() as tx:
        found = tx.hosts.find_by_entra_device_id(ENTRA)
        assert found is not None and found.id == host_id and found.team_id == host.team_id

    downgrade(engine, "0004_admin")
    assert current_revision(engine) == "0004_admin"
    assert "entra_device_id" not in _columns(engine)
    assert "ix_hosts_entra_device_id" not in _indexes(engine)
    # Only the pending status of that enrollment changed the host; nothing was lost.
    downgraded = _rows(engine)
    assert downgraded["teams"] == before["teams"] and downgraded["enrollments"] == before["enrollments"]
    assert [(row["id"], row["uuid"], row["team_id"]) for row in downgraded["hosts"]] == [
        (row["id"], row["uuid"], row["team_id"]) for row in before["hosts"]
    ]

    migrate(engine, "0005_entra_device")
    assert current_revision(engine) == "0005_entra_device"
    with storage.transaction() as tx:
        assert tx.hosts.get(host_id).entra_device_id is None  # dropped with the column
