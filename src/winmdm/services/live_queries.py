"""Live queries: SQL an admin sends to one host's osquery agent, answered at the agent's next
distributed read and write (docs/agent-channel.md "Live queries")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from winmdm.domain.osquery import LiveQuery
from winmdm.errors import InvalidInput, NotFound
from winmdm.storage.protocols import Storage

MAX_SQL = 8000
LIST_LIMIT = 50


class LiveQueries:
    def __init__(self, storage: Storage, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock

    def run(self, host_id: int, sql: str, *, actor: str | None = None) -> LiveQuery:
        """Queue the query for the host's agent; NotFound for an unknown host."""
        sql = sql.strip()
        if not sql:
            raise InvalidInput("the query is empty: send an osquery SQL statement", field="sql")
        if len(sql) > MAX_SQL or "\x00" in sql:
            raise InvalidInput(f"the query must be at most {MAX_SQL} characters of text", field="sql")
        now = self._clock()
        with self._storage.transaction() as tx:
            host = tx.hosts.get(host_id)
            if host is None:
                raise NotFound(f"no host with id {host_id}")
            query = tx.live_queries.add(host_id, sql, actor=actor, at=now)
            tx.activities.add(
                "ran_live_query",
                at=now,
                actor=actor,
                host_id=host_id,
                details={"host_display_name": host.display_name, "query_id": query.id, "query_sql": sql},
            )
            return query

    def get(self, host_id: int, query_id: int) -> LiveQuery:
        with self._storage.transaction() as tx:
            query = tx.live_queries.get(query_id)
        if query is None or query.host_id != host_id:
            raise NotFound(f"host {host_id} has no live query with id {query_id}")
        return query

    def list(self, host_id: int, *, with_rows: bool = True) -> list[LiveQuery]:
        """The host's newest live queries, newest first; `with_rows=False` leaves their results
        unread (`rows` empty, `row_count` kept), for a list that shows only counts."""
        with self._storage.transaction() as tx:
            if tx.hosts.get(host_id) is None:
                raise NotFound(f"no host with id {host_id}")
            return tx.live_queries.list_for_host(host_id, limit=LIST_LIMIT, with_rows=with_rows)
