"""The storage contract for the OMA-DM hot path: command queue and sessions, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.storage.test_contract import T0, enrolled, new_enrollment, new_host
from winmdm.domain.management import CommandKind, CommandReply, CommandState, MDMSession, SessionProof
from winmdm.errors import NotFound
from winmdm.protocol import syncml
from winmdm.protocol.syncml.session import Assembly, PendingChunk, Placed, QueuedRef, SessionState
from winmdm.storage import sql_rows
from winmdm.storage.sql import SQLStorage

REPLIES = (
    CommandReply(cmd_ref=2, cmd="Get", code=200, items=(("./DevDetail/SwV", "10.0.1"), ("./X", None))),
    CommandReply(cmd_ref=3, cmd="Replace", code=None),
)


def hosts(storage: SQLStorage, count: int = 2) -> list[int]:
    with storage.transaction() as tx:
        return [
            tx.hosts.create(new_host(uuid=f"u-{n}", hw_dev_id=f"HW-{n}", device_id=f"DEV-{n}")).id
            for n in range(count)
        ]


def queued(storage: SQLStorage, host_ids: list[int], uuid: str, **changes: object) -> int:
    """A new command queued for the hosts; returns its id."""
    with storage.transaction() as tx:
        command = tx.commands.create(
            changes.pop("kind", CommandKind.RAW), f"<Get>{uuid}</Get>", at=T0, uuid=uuid, **changes
        )
        tx.commands.enqueue(command.id, host_ids, T0)
    return command.id


def sent(storage: SQLStorage, host_id: int, command_id: int, session_key: str = "s1") -> None:
    with storage.transaction() as tx:
        tx.commands.mark_sent(host_id, command_id, session_key=session_key, msg_id=2, cmd_ids=(3, 4), at=T0)


def test_create_command_round_trip(storage: SQLStorage) -> None:
    context = {"profile_id": 7, "loc_uris": ["./A", "./B"], "nested": {"ok": True}}
    with storage.transaction() as tx:
        plain = tx.commands.create(CommandKind.REBOOT, "<Exec/>", at=T0, uuid="c-1")
        full = tx.commands.create(
            CommandKind.PROFILE, "<Atomic/>", at=T0, uuid="c-2", actor="admin@corp", context=context
        )
    assert plain.kind is CommandKind.REBOOT and plain.context == {} and plain.actor is None
    assert (full.uuid, full.payload, full.actor, full.context) == ("c-2", "<Atomic/>", "admin@corp", context)
    assert full.created_at == T0 and full.id != plain.id
    with pytest.raises(sa.exc.IntegrityError), storage.transaction() as tx:
        tx.commands.create(CommandKind.RAW, "<Get/>", at=T0, uuid="c-1")


@pytest.mark.parametrize("trust_from", [1, sql_rows.TRUST_FROM], ids=["ids-trusted", "ids-checked"])
def test_enqueue_counts_and_ignores_duplicates(
    storage: SQLStorage, monkeypatch: pytest.MonkeyPatch, trust_from: int
) -> None:
    """Both ways of for_listed_hosts: the ids trusted to the foreign key, or joined with hosts."""
    monkeypatch.setattr(sql_rows, "TRUST_FROM", trust_from)
    first, second, third = hosts(storage, 3)
    with storage.transaction() as tx:
        command = tx.commands.create(CommandKind.RAW, "<Get/>", at=T0, uuid="c-1")
        assert tx.commands.enqueue(command.id, [first, second], T0) == 2
        # Already queued, repeated in the list, unknown host: only `third` is new.
        assert tx.commands.enqueue(command.id, [first, third, third, 424242], T0) == 1
        # Repeated and out of order, every host known.
        other = tx.commands.create(CommandKind.RAW, "<Get/>", at=T0, uuid="c-2")
        assert tx.commands.enqueue(other.id, [third, first, third], T0) == 2
        assert tx.commands.enqueue(command.id, [], T0) == 0
        assert tx.commands.enqueue(command.id, [first, second, third], T0) == 0
    with storage.transaction() as tx:
        for host_id in (first, second, third):
            got = tx.commands.get(host_id, "c-1")
            assert got.state is CommandState.PENDING
            assert (got.attempts, got.cmd_ids, got.replies, got.queued_at) == (0, (), (), T0)
            assert got.command == command and got.host_id == host_id
            assert (got.session_key, got.msg_id, got.sent_at, got.done_at) == (None, None, None, None)


def test_next_for_host_pending_oldest_first(storage: SQLStorage) -> None:
    host, other = hosts(storage)
    ids = [queued(storage, [host], f"c-{n}") for n in range(3)]
    queued(storage, [other], "c-other")
    with storage.transaction() as tx:
        # Queued out of creation order: order is still by command id.
        late = tx.commands.create(CommandKind.WIPE, "<Exec/>", at=T0, uuid="c-late")
        early = ids[0]
        assert [c.command.id for c in tx.commands.next_for_host(host, "s1")] == ids
        tx.commands.enqueue(late.id, [host], T0 + timedelta(hours=1))
    with storage.transaction() as tx:
        got = tx.commands.next_for_host(host, "s1")
    assert [c.command.uuid for c in got] == ["c-0", "c-1", "c-2", "c-late"]
    assert got[0].command.id == early and all(c.host_id == host for c in got)
    assert got[-1].command.kind is CommandKind.WIPE


def test_next_for_host_sent_elsewhere_counts_as_pending(storage: SQLStorage) -> None:
    (host,) = hosts(storage, 1)
    pending, in_this, in_broken, done = (queued(storage, [host], f"c-{n}") for n in range(4))
    sent(storage, host, in_this, "s-now")
    sent(storage, host, in_broken, "s-broken")
    sent(storage, host, done, "s-broken")
    with storage.transaction() as tx:
        assert tx.commands.record_reply(host, done, status_code=200, replies=(), raw_reply="", at=T0)
        got = tx.commands.next_for_host(host, "s-now")
    assert [c.command.id for c in got] == [pending, in_broken]
    assert [c.state for c in got] == [CommandState.PENDING, CommandState.SENT]
    assert got[1].session_key == "s-broken" and got[1].attempts == 1
    with storage.transaction() as tx:
        # From the broken session's point of view its own SENT command is not due again.
        assert [c.command.id for c in tx.commands.next_for_host(host, "s-broken")] == [pending, in_this]
        assert tx.commands.next_for_host(424242, "s-now") == []


def test_next_for_host_is_one_query(storage: SQLStorage) -> None:
    (host,) = hosts(storage, 1)
    for n in range(3):
        queued(storage, [host], f"c-{n}")
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    with storage.transaction() as tx:
        tx.hosts.get(host)  # the transaction has begun (SQLite's BEGIN IMMEDIATE is not counted)
        sa.event.listen(storage.engine, "before_cursor_execute", count)
        try:
            got = tx.commands.next_for_host(host, "s1")
        finally:
            sa.event.remove(storage.engine, "before_cursor_execute", count)
    assert len(got) == 3
    assert len(statements) == 1, statements
    assert "JOIN" in statements[0].upper()


def test_mark_sent_then_sent_again(storage: SQLStorage) -> None:
    (host,) = hosts(storage, 1)
    command_id = queued(storage, [host], "c-1")
    at = T0 + timedelta(minutes=1)
    with storage.transaction() as tx:
        tx.commands.mark_sent(host, command_id, session_key="s1", msg_id=2, cmd_ids=[5, 6, 7], at=at)
        got = tx.commands.get(host, "c-1")
    assert got.state is CommandState.SENT
    assert (got.session_key, got.msg_id, got.cmd_ids, got.sent_at, got.attempts) == (
        "s1",
        2,
        (5, 6, 7),
        at,
        1,
    )
    later = at + timedelta(minutes=5)
    with storage.transaction() as tx:
        tx.commands.mark_sent(host, command_id, session_key="s2", msg_id=1, cmd_ids=(9,), at=later)
        got = tx.commands.get(host, "c-1")
    assert (got.session_key, got.msg_id, got.cmd_ids, got.sent_at, got.attempts) == ("s2", 1, (9,), later, 2)
    with pytest.raises(NotFound), storage.transaction() as tx:
        tx.commands.mark_sent(host, command_id + 1000, session_key="s", msg_id=1, cmd_ids=(), at=at)


def test_record_reply_applies_once(storage: SQLStorage) -> None:
    (host,) = hosts(storage, 1)
    command_id = queued(storage, [host], "c-1")
    at = T0 + timedelta(minutes=2)
    with storage.transaction() as tx:
        # Not SENT yet: nothing written.
        assert not tx.commands.record_reply(
            host, command_id, status_code=500, replies=(), raw_reply="x", at=at
        )
        assert tx.commands.get(host, "c-1").state is CommandState.PENDING
    sent(storage, host, command_id)
    with storage.transaction() as tx:
        assert tx.commands.record_reply(
            host, command_id, status_code=200, replies=REPLIES, raw_reply="<Status/>", at=at
        )
    with storage.transaction() as tx:
        assert not tx.commands.record_reply(
            host, command_id, status_code=500, replies=(), raw_reply="again", at=at + timedelta(hours=1)
        )
        assert not tx.commands.record_reply(host, 424242, status_code=200, replies=(), raw_reply="", at=at)
        got = tx.commands.get(host, "c-1")
    assert got.state is CommandState.DONE
    assert (got.status_code, got.raw_reply, got.done_at) == (200, "<Status/>", at)
    assert got.replies == REPLIES
    assert isinstance(got.replies[0].items[0], tuple)
    with storage.transaction() as tx:
        assert tx.commands.next_for_host(host, "s2") == []


def test_get_and_list_for_host(storage: SQLStorage) -> None:
    host, other = hosts(storage)
    ids = [queued(storage, [host], f"c-{n}") for n in range(4)]
    queued(storage, [other], "c-other")
    with storage.transaction() as tx:
        assert tx.commands.get(host, "c-other") is None
        assert tx.commands.get(host, "missing") is None
        assert tx.commands.get(other, "c-other").command.uuid == "c-other"
        assert [c.command.id for c in tx.commands.list_for_host(host)] == ids[::-1]
        assert [c.command.id for c in tx.commands.list_for_host(host, limit=2)] == ids[:1:-1]
        assert tx.commands.list_for_host(424242) == []


def test_deleting_a_host_drops_its_queue(storage: SQLStorage) -> None:
    host, other = hosts(storage)
    queued(storage, [host, other], "c-1")
    with storage.transaction() as tx:
        tx.connection.execute(sa.text("DELETE FROM hosts WHERE id = :id"), {"id": host})
    with storage.transaction() as tx:
        assert tx.commands.get(host, "c-1") is None
        assert tx.commands.get(other, "c-1") is not None


# --- sessions --------------------------------------------------------------------------------


def session(enrollment_id: int, **changes: object) -> MDMSession:
    status = syncml.Status(cmd_id=4, msg_ref=2, cmd_ref=3, cmd="Get", data=200)
    state = SessionState(
        session_id="1A",
        client_msg_id=2,
        server_msg_id=2,
        placed=(Placed(1, 2, QueuedRef(7, "c-1"), True), Placed(2, 3, QueuedRef(8, "c-2"), False)),
        pending=(
            PendingChunk(QueuedRef(8, "c-2"), syncml.Add(cmd_id=4, items=(syncml.Item(data="part 2"),))),
        ),
        incoming=Assembly(
            name="Results",
            uri="./DevDetail/X",
            data="abé",
            size=9,
            meta=syncml.Meta(format="chr", type="text/plain"),
            answering=(2, 3),
            held=(status,),
        ),
    )
    values: dict[str, object] = {
        "enrollment_id": enrollment_id,
        "key": "k1",
        "state": state,
        "proof": SessionProof.CERTIFICATE,
        "certificate_serial": "1f2e",
        "request_digest": b"\x00" * 32,
        "response": b"<SyncML>\x00\xff</SyncML>",
        "started_at": T0,
        "updated_at": T0 + timedelta(seconds=5),
    }
    values.update(changes)
    return MDMSession(**values)  # type: ignore[arg-type]


def test_session_round_trip(storage: SQLStorage) -> None:
    _, enrollment = enrolled(storage)
    with storage.transaction() as tx:
        assert tx.sessions.get(enrollment) is None
        tx.sessions.save(session(enrollment))
    with storage.transaction() as tx:
        got = tx.sessions.get(enrollment)
    assert got == session(enrollment)
    assert isinstance(got.response, bytes) and isinstance(got.state.pending, tuple)


def test_session_save_replaces_the_enrollments_row(storage: SQLStorage) -> None:
    host, enrollment = enrolled(storage)
    with storage.transaction() as tx:
        other = tx.enrollments.add(new_enrollment(host, device_id="DEV-2")).id
        tx.sessions.save(session(enrollment))
        tx.sessions.save(session(other, key="k-other"))
    replacement = session(
        enrollment,
        key="k2",
        state=SessionState(session_id="2B", client_msg_id=4, server_msg_id=5),
        proof=None,
        certificate_serial=None,
        request_digest=None,
        response=None,
        started_at=None,
        updated_at=None,
    )
    with storage.transaction() as tx:
        tx.sessions.save(replacement)
    with storage.transaction() as tx:
        assert tx.sessions.get(enrollment) == replacement
        assert tx.sessions.get(other).key == "k-other"
        count = tx.connection.execute(sa.text("SELECT COUNT(*) FROM mdm_sessions")).scalar_one()
        assert count == 2


def test_a_session_goes_with_its_enrollment(storage: SQLStorage) -> None:
    host, enrollment = enrolled(storage)
    with storage.transaction() as tx:
        tx.sessions.save(session(enrollment))
        tx.connection.execute(sa.text("DELETE FROM hosts WHERE id = :id"), {"id": host})
    with storage.transaction() as tx:
        assert tx.sessions.get(enrollment) is None


def test_cancel_pending_drops_only_unsent_deliveries(storage: SQLStorage) -> None:
    first, second = hosts(storage, 2)
    command_id = queued(storage, [first, second], "c-cancel")
    sent(storage, second, command_id)
    with storage.transaction() as tx:
        assert tx.commands.cancel_pending(first, "c-cancel") is True
        assert tx.commands.cancel_pending(first, "c-cancel") is False  # already gone
        assert tx.commands.cancel_pending(second, "c-cancel") is False  # the device has it
        assert tx.commands.cancel_pending(first, "no-such-command") is False
    with storage.transaction() as tx:
        assert tx.commands.get(first, "c-cancel") is None
        assert tx.commands.get(second, "c-cancel").state is CommandState.SENT
        assert tx.commands.next_for_host(first, "s2") == []


def test_deliveries_are_every_hosts_copy_of_one_command(storage: SQLStorage) -> None:
    first, second, other = hosts(storage, 3)
    command_id = queued(storage, [second, first], "c-many")
    queued(storage, [other], "c-other")
    sent(storage, first, command_id)
    with storage.transaction() as tx:
        found = tx.commands.deliveries("c-many")
        assert tx.commands.deliveries("c-none") == []
    assert [(d.host_id, d.state) for d in found] == [
        (first, CommandState.SENT),
        (second, CommandState.PENDING),
    ]
    assert {d.command.uuid for d in found} == {"c-many"}
