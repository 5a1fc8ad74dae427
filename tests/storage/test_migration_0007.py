"""Revision 0007_fleet_scale_indexes, up and down, on SQLite and PostgreSQL: the counts start from
the hosts already there, the triggers keep them from then on, and nothing of hosts changes."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from winmdm.domain.fleet import TeamScope
from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import hosts, teams

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INDEX = "ix_hosts_mdm_status_enrollment_kind"


def _add_host(conn: sa.Connection, n: int, status: str, kind: str | None, team_id: int | None) -> None:
    conn.execute(
        hosts.insert().values(
            uuid=f"u-{n}",
            display_name=f"DESKTOP-{n}",
            mdm_status=status,
            enrollment_kind=kind,
            team_id=team_id,
            created_at=T0,
            updated_at=T0,
        )
    )


def _counts(engine: sa.Engine) -> set[tuple]:
    with SQLStorage(engine).transaction() as tx:
        return {
            (c.team_id, c.mdm_status.value, c.enrollment_kind and c.enrollment_kind.value, c.count)
            for c in tx.hosts.status_counts(TeamScope.ALL)
        }


def test_counts_start_from_the_hosts_there_and_go_with_the_downgrade(engine: sa.Engine) -> None:
    migrate(engine, "0006_sessions_per_enrollment")
    with engine.begin() as conn:
        team = conn.execute(
            teams.insert().values(name="Finance", created_at=T0).returning(teams.c.id)
        ).scalar()
        _add_host(conn, 1, "on", "manual", team)
        _add_host(conn, 2, "on", "manual", team)
        _add_host(conn, 3, "off", None, None)
        _add_host(conn, 4, "pending", "automatic", None)
    with engine.connect() as conn:
        before = conn.execute(sa.select(hosts).order_by(hosts.c.id)).all()

    migrate(engine, "0007_fleet_scale_indexes")
    assert current_revision(engine) == "0007_fleet_scale_indexes"
    assert INDEX in {index["name"] for index in sa.inspect(engine).get_indexes("hosts")}
    assert _counts(engine) == {
        (team, "on", "manual", 2),
        (None, "off", None, 1),
        (None, "pending", "automatic", 1),
    }
    with engine.begin() as conn:  # the triggers run from now on
        _add_host(conn, 5, "on", "manual", team)
        conn.execute(hosts.update().where(hosts.c.id == 4).values(mdm_status="on"))
    assert _counts(engine) == {
        (team, "on", "manual", 3),
        (None, "off", None, 1),
        (None, "on", "automatic", 1),
    }
    with engine.connect() as conn:
        assert conn.execute(sa.select(hosts).where(hosts.c.id < 4).order_by(hosts.c.id)).all() == before[:3]

    downgrade(engine, "0006_sessions_per_enrollment")
    assert "host_status_counts" not in sa.inspect(engine).get_table_names()
    assert INDEX not in {index["name"] for index in sa.inspect(engine).get_indexes("hosts")}
    with engine.begin() as conn:  # no trigger left behind to write into a missing table
        _add_host(conn, 6, "on", "manual", team)
        conn.execute(hosts.update().where(hosts.c.id == 6).values(mdm_status="off"))
        conn.execute(hosts.delete().where(hosts.c.id == 6))

    migrate(engine)
    assert _counts(engine) == {
        (team, "on", "manual", 3),
        (None, "off", None, 1),
        (None, "on", "automatic", 1),
    }
