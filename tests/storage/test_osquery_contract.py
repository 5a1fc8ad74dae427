"""AgentNodeStore and LiveQueryStore on SQLite and PostgreSQL (storage/osquery_protocols.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from winmdm.domain.models import MDMStatus, NewHost
from winmdm.domain.osquery import LiveQueryState, NewAgentNode
from winmdm.errors import NotFound
from winmdm.storage.sql import SQLStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _host(tx, n: int) -> int:
    new = NewHost(f"u-{n}", f"PC-{n}", None, None, None, None, None, T0, mdm_status=MDMStatus.OFF)
    return tx.hosts.create(new).id


def _node(host_id: int, key: str, uuid: str = "UUID-1", at: datetime = T0) -> NewAgentNode:
    return NewAgentNode(host_id, key * 64, "PC", uuid, "SN", "2", "5.12.1", enrolled_at=at)


def test_a_host_has_one_node_and_a_new_one_replaces_its_key(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = _host(tx, 1)
        first = tx.osquery_nodes.replace(_node(host, "a"))
        tx.osquery_nodes.count_logs(first.id, status=2, result=5, at=T0)
        second = tx.osquery_nodes.replace(_node(host, "b", at=T0 + timedelta(days=1)))
        assert tx.osquery_nodes.by_key_hash("a" * 64) is None
        assert tx.osquery_nodes.by_key_hash("b" * 64) == second == tx.osquery_nodes.for_host(host)
        assert (second.status_logs, second.result_logs, second.enrolled_at) == (0, 0, T0 + timedelta(days=1))
        tx.osquery_nodes.seen(second.id, T0 + timedelta(days=2))
        tx.osquery_nodes.count_logs(second.id, status=1, result=3, at=T0 + timedelta(days=2))
        tx.osquery_nodes.count_logs(second.id, status=0, result=4, at=T0 + timedelta(days=3))
        tx.osquery_nodes.mdm_checked(second.id, T0)
        seen = tx.osquery_nodes.for_host(host)
        assert tx.hosts.get(host).last_seen_at == seen.last_seen_at == T0 + timedelta(days=2)
        assert (seen.status_logs, seen.result_logs, seen.last_log_at) == (1, 7, T0 + timedelta(days=3))
        assert seen.mdm_checked_at == T0
        tx.osquery_nodes.mdm_checked(second.id, None)
        assert tx.osquery_nodes.for_host(host).mdm_checked_at is None
        assert tx.osquery_nodes.find_by_hardware_uuid("") is None
        assert tx.osquery_nodes.find_by_hardware_uuid(None) is None


def test_live_queries_are_taken_once_and_answered_once(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host, other = _host(tx, 1), _host(tx, 2)
        queries = [tx.live_queries.add(host, f"SELECT {n}", actor="a@corp.example", at=T0) for n in range(3)]
        theirs = tx.live_queries.add(other, "SELECT 9", actor=None, at=T0)
        with pytest.raises(NotFound):
            tx.live_queries.add(999_999, "SELECT 1", actor=None, at=T0)
        taken = tx.live_queries.take_pending(host, limit=2, at=T0 + timedelta(seconds=5))
        assert [q.id for q in taken] == [q.id for q in queries[:2]]
        assert all(q.state is LiveQueryState.SENT and q.sent_at == T0 + timedelta(seconds=5) for q in taken)
        assert [q.id for q in tx.live_queries.take_pending(host, limit=5, at=T0)] == [queries[2].id]
        assert tx.live_queries.take_pending(host, limit=5, at=T0) == []
        rows = [{"name": "x", "empty": ""}]
        at = T0 + timedelta(seconds=9)
        assert tx.live_queries.record_result(
            host, taken[0].id, status=0, message="", rows=rows, row_count=3, at=at
        )
        assert not tx.live_queries.record_result(
            host, taken[0].id, status=1, message="x", rows=[], row_count=0, at=at
        )
        assert not tx.live_queries.record_result(
            host, theirs.id, status=0, message=None, rows=[], row_count=0, at=at
        )
        done = tx.live_queries.get(taken[0].id)
        assert (done.state, done.status, done.rows, done.row_count, done.done_at) == (
            LiveQueryState.DONE,
            0,
            rows,
            3,
            at,
        )
        assert tx.live_queries.get(theirs.id).state is LiveQueryState.PENDING
        assert [q.id for q in tx.live_queries.list_for_host(host, limit=2)] == [queries[2].id, queries[1].id]
        listed = {q.id: q for q in tx.live_queries.list_for_host(host, limit=5)}
        assert listed[done.id] == done
        counted = {q.id: q for q in tx.live_queries.list_for_host(host, limit=5, with_rows=False)}
        assert counted[done.id] == dataclasses.replace(done, rows=[])  # results unread, count kept


def test_a_merge_brings_the_sources_agent_and_queries(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        target, source, third = _host(tx, 1), _host(tx, 2), _host(tx, 3)
        tx.osquery_nodes.replace(_node(target, "a"))
        node = tx.osquery_nodes.replace(_node(source, "b", uuid="UUID-2"))
        query = tx.live_queries.add(source, "SELECT 1", actor=None, at=T0)
        tx.hosts.merge_into(source, target, T0)
        assert tx.osquery_nodes.by_key_hash("a" * 64) is None  # the source's agent replaces it
        assert tx.osquery_nodes.by_key_hash("b" * 64).id == node.id
        assert tx.osquery_nodes.for_host(target).id == node.id
        assert tx.live_queries.get(query.id).host_id == target
        # A source without an agent leaves the target's.
        tx.hosts.merge_into(third, target, T0)
        assert tx.osquery_nodes.for_host(target).id == node.id
