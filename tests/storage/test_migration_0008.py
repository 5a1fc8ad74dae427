"""Revision 0008_osquery_agent, up and down, on SQLite and PostgreSQL: the agent's tables come
and go, hosts and their status counts (0007's triggers) are untouched, and a host's agent rows
go with the host."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from winmdm.domain.fleet import TeamScope
from winmdm.domain.osquery import NewAgentNode
from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import hosts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TABLES = {"osquery_nodes", "live_queries"}


def _add_host(conn: sa.Connection, n: int) -> int:
    return conn.execute(
        hosts.insert()
        .values(uuid=f"u-{n}", display_name=f"DESKTOP-{n}", mdm_status="on", created_at=T0, updated_at=T0)
        .returning(hosts.c.id)
    ).scalar_one()


def _counts(engine: sa.Engine) -> set[tuple]:
    with SQLStorage(engine).transaction() as tx:
        return {(c.team_id, c.mdm_status.value, c.count) for c in tx.hosts.status_counts(TeamScope.ALL)}


def test_the_agent_tables_come_and_go_and_hosts_stay(engine: sa.Engine) -> None:
    migrate(engine, "0007_fleet_scale_indexes")
    with engine.begin() as conn:
        first, second = _add_host(conn, 1), _add_host(conn, 2)
    with engine.connect() as conn:
        before = conn.execute(sa.select(hosts).order_by(hosts.c.id)).all()
    assert not TABLES & set(sa.inspect(engine).get_table_names())

    migrate(engine, "0008_osquery_agent")
    assert current_revision(engine) == "0008_osquery_agent"
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    storage = SQLStorage(engine)
    with storage.transaction() as tx:
        node = tx.osquery_nodes.replace(
            NewAgentNode(first, "a" * 64, "PC-1", "UUID-1", "SN-1", "2", "5.12.1", enrolled_at=T0)
        )
        query = tx.live_queries.add(first, "SELECT 1", actor=None, at=T0)
        tx.live_queries.add(second, "SELECT 2", actor=None, at=T0)
        assert (node.status_logs, node.result_logs, node.mdm_checked_at) == (0, 0, None)
        assert tx.osquery_nodes.find_by_hardware_uuid("UUID-1") == node
        assert tx.live_queries.get(query.id).rows == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(hosts).order_by(hosts.c.id)).all() == before
    assert _counts(engine) == {(None, "on", 2)}
    with storage.transaction() as tx:  # the foreign keys take a deleted host's agent rows
        assert tx.hosts.delete(first)
        assert tx.osquery_nodes.find_by_hardware_uuid("UUID-1") is None
        assert tx.live_queries.get(query.id) is None
        assert len(tx.live_queries.list_for_host(second, limit=10)) == 1

    downgrade(engine, "0007_fleet_scale_indexes")
    assert not TABLES & set(sa.inspect(engine).get_table_names())
    assert _counts(engine) == {(None, "on", 1)}
    migrate(engine)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
