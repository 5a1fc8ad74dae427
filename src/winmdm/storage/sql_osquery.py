"""SQL AgentNodeStore and LiveQueryStore (osquery_protocols.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.osquery import AgentNode, LiveQuery, LiveQueryState, NewAgentNode
from winmdm.storage.schema import hosts, live_queries, osquery_nodes
from winmdm.storage.sql_rows import host_missing, identifier, upsert

_p = sa.bindparam
_n = osquery_nodes.c
_q = live_queries.c

_NODE_BY_KEY = osquery_nodes.select().where(_n.node_key_hash == _p("key_hash"))
_NODE_FOR_HOST = osquery_nodes.select().where(_n.host_id == _p("match_host_id"))
_NODE_BY_UUID = (
    osquery_nodes.select().where(_n.hardware_uuid == _p("uuid")).order_by(_n.enrolled_at, _n.id).limit(1)
)
_NODE_SEEN = osquery_nodes.update().where(_n.id == _p("node_id")).values(last_seen_at=_p("seen_at"))
_HOST_SEEN = (
    hosts.update()
    .where(hosts.c.id == sa.select(_n.host_id).where(_n.id == _p("node_id")).scalar_subquery())
    .values(last_seen_at=_p("seen_at"))
)
_NODE_LOGS = (
    osquery_nodes.update()
    .where(_n.id == _p("node_id"))
    .values(
        status_logs=_n.status_logs + _p("add_status", type_=sa.BigInteger),
        result_logs=_n.result_logs + _p("add_result", type_=sa.BigInteger),
        last_log_at=_p("log_at"),
    )
)
_NODE_MDM_CHECKED = (
    osquery_nodes.update().where(_n.id == _p("node_id")).values(mdm_checked_at=_p("checked_at"))
)

_NODE_POLICIES_SENT = (
    osquery_nodes.update().where(_n.id == _p("node_id")).values(policies_run_at=_p("sent_at"))
)

_INSERT_QUERY = live_queries.insert().returning(*live_queries.c)
_GET_QUERY = live_queries.select().where(_q.id == _p("query_id"))
_HOST_EXISTS = sa.select(hosts.c.id).where(hosts.c.id == _p("host_id"))


def _node(row: Mapping[str, Any]) -> AgentNode:
    return AgentNode(**{name: row[name] for name in AgentNode.__slots__})  # type: ignore[attr-defined]


def _query(row: Mapping[str, Any]) -> LiveQuery:
    values = {name: row.get(name) for name in LiveQuery.__slots__}  # type: ignore[attr-defined]
    values["rows"] = list(values["rows"] or [])  # none read: list_for_host(with_rows=False)
    return LiveQuery(**values)


class SQLAgentNodeStore:
    """AgentNodeStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def replace(self, new: NewAgentNode) -> AgentNode:
        values = {
            "host_id": new.host_id,
            "node_key_hash": new.node_key_hash,
            "host_identifier": new.host_identifier,
            "hardware_uuid": identifier(new.hardware_uuid),
            "hardware_serial": identifier(new.hardware_serial),
            "platform_type": new.platform_type,
            "osquery_version": new.osquery_version,
            "enrolled_at": new.enrolled_at,
            "last_seen_at": new.enrolled_at,
            "mdm_checked_at": None,
            "status_logs": 0,
            "result_logs": 0,
            "last_log_at": None,
            "policies_run_at": None,
        }
        # One statement: two enrollments of one host at once cannot both insert.
        upsert(self._conn, osquery_nodes, values, ("host_id",))
        found = self.for_host(new.host_id)
        assert found is not None
        return found

    def by_key_hash(self, node_key_hash: str) -> AgentNode | None:
        row = self._conn.execute(_NODE_BY_KEY, {"key_hash": node_key_hash}).one_or_none()
        return None if row is None else _node(row._mapping)

    def for_host(self, host_id: int) -> AgentNode | None:
        row = self._conn.execute(_NODE_FOR_HOST, {"match_host_id": host_id}).one_or_none()
        return None if row is None else _node(row._mapping)

    def find_by_hardware_uuid(self, hardware_uuid: str | None) -> AgentNode | None:
        if not hardware_uuid:
            return None
        row = self._conn.execute(_NODE_BY_UUID, {"uuid": hardware_uuid}).one_or_none()
        return None if row is None else _node(row._mapping)

    def seen(self, node_id: int, at: datetime) -> None:
        self._conn.execute(_NODE_SEEN, {"node_id": node_id, "seen_at": at})
        self._conn.execute(_HOST_SEEN, {"node_id": node_id, "seen_at": at})

    def count_logs(self, node_id: int, *, status: int, result: int, at: datetime) -> None:
        self._conn.execute(
            _NODE_LOGS, {"node_id": node_id, "add_status": status, "add_result": result, "log_at": at}
        )

    def mdm_checked(self, node_id: int, at: datetime | None) -> None:
        self._conn.execute(_NODE_MDM_CHECKED, {"node_id": node_id, "checked_at": at})

    def policies_sent(self, node_id: int, at: datetime | None) -> None:
        self._conn.execute(_NODE_POLICIES_SENT, {"node_id": node_id, "sent_at": at})


class SQLLiveQueryStore:
    """LiveQueryStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, host_id: int, sql: str, *, actor: str | None, at: datetime) -> LiveQuery:
        if self._conn.execute(_HOST_EXISTS, {"host_id": host_id}).first() is None:
            raise host_missing(host_id)
        row = self._conn.execute(
            _INSERT_QUERY,
            {
                "host_id": host_id,
                "sql": sql,
                "state": LiveQueryState.PENDING,
                "actor": actor,
                "created_at": at,
                "rows": [],
            },
        ).one()
        return _query(row._mapping)

    def get(self, query_id: int) -> LiveQuery | None:
        row = self._conn.execute(_GET_QUERY, {"query_id": query_id}).one_or_none()
        return None if row is None else _query(row._mapping)

    def list_for_host(self, host_id: int, *, limit: int, with_rows: bool = True) -> list[LiveQuery]:
        columns = _q if with_rows else [c for c in _q if c.name != "rows"]
        query = sa.select(*columns).where(_q.host_id == host_id).order_by(_q.id.desc()).limit(limit)
        return [_query(row._mapping) for row in self._conn.execute(query)]

    def take_pending(self, host_id: int, *, limit: int, at: datetime) -> list[LiveQuery]:
        pending = (
            sa.select(_q.id)
            .where(_q.host_id == host_id, _q.state == LiveQueryState.PENDING)
            .order_by(_q.id)
            .limit(limit)
        )
        ids = list(self._conn.execute(pending).scalars())
        if not ids:
            return []
        # The state in the WHERE: of two reads at once, each takes only what it changed.
        taken = self._conn.execute(
            live_queries.update()
            .where(_q.id.in_(ids), _q.state == LiveQueryState.PENDING)
            .values(state=LiveQueryState.SENT, sent_at=at)
            .returning(*live_queries.c)
        )
        return sorted((_query(row._mapping) for row in taken), key=lambda q: q.id)

    def record_result(
        self,
        host_id: int,
        query_id: int,
        *,
        status: int,
        message: str | None,
        rows: Sequence[dict[str, Any]],
        row_count: int,
        at: datetime,
    ) -> bool:
        result = self._conn.execute(
            live_queries.update()
            .where(_q.id == query_id, _q.host_id == host_id, _q.state != LiveQueryState.DONE)
            .values(
                state=LiveQueryState.DONE,
                done_at=at,
                status=status,
                message=message,
                rows=list(rows),
                row_count=row_count,
            )
        )
        return result.rowcount == 1
