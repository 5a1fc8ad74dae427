"""protocol/syncml/session.py: CmdIDs, sizes kept as a reply grows, chunks both ways, and the
stored form of a session. Pure: no server, no database."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol.test_syncml_properties import COMMAND, HEADER, MESSAGE, STATUS
from tests.vectors import family, vector
from winmdm.errors import HostileInput, MalformedMessage
from winmdm.protocol import syncml
from winmdm.protocol.syncml import AlertCode, StatusCode
from winmdm.protocol.syncml.session import (
    Assembly,
    PendingChunk,
    Placed,
    QueuedRef,
    Reply,
    SessionState,
    absorb,
    dump_state,
    load_state,
    renumber,
    split,
)

REQUEST = syncml.SyncHdr(session_id="1A", msg_id=3, target="https://mdm.example/m", source="DEV-1")
REF = QueuedRef(7, "c-7")


def _plain(command: syncml.Command) -> bool:
    """Without msft:originalerror, which a server never writes (it declares a namespace on SyncBody)."""
    if isinstance(command, syncml.Status):
        return command.original_error is None
    if isinstance(command, syncml.Atomic | syncml.Sequence):
        return all(_plain(c) for c in command.commands)
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HEADER, st.lists(STATUS.filter(_plain), max_size=4), st.lists(COMMAND.filter(_plain), max_size=4))
def test_the_size_kept_as_a_reply_grows_is_its_size_built(header, statuses, commands) -> None:
    reply = Reply(header, msg_id=2)
    for status in statuses:
        reply.status(dataclasses.replace(status, cmd_id=reply.cmd_id()))
    for command in commands:
        reply.place(REF, command, budget=10**9, device_limit=False)
    assert reply.size == len(reply.build())
    reply.next_message()
    assert reply.size == len(reply.build())


def test_renumber_numbers_a_command_and_its_children_in_order() -> None:
    atomic = syncml.Atomic(
        cmd_id=1,
        commands=(
            syncml.Replace(cmd_id=9, items=(syncml.Item(target="./A", data="1"),)),
            syncml.Sequence(cmd_id=9, commands=(syncml.Get(cmd_id=9, items=(syncml.Item(target="./B"),)),)),
        ),
    )
    numbered, ids = renumber(atomic, 5)
    assert ids == [5, 6, 7, 8]
    assert numbered.cmd_id == 5 and numbered.commands[0].cmd_id == 6
    assert numbered.commands[1].cmd_id == 7 and numbered.commands[1].commands[0].cmd_id == 8


def _replace(data: str) -> syncml.Replace:
    return syncml.Replace(cmd_id=4, items=(syncml.Item(target="./Device/Vendor/MSFT/X", data=data),))


@pytest.mark.parametrize("data", ["a" * 5000, "<é&>" * 1500])
def test_split_chunks_fit_and_add_up(data: str) -> None:
    chunks = split(_replace(data), 900)
    assert chunks is not None and len(chunks) > 1
    assert all(syncml.command_size(c) <= 900 for c in chunks)
    assert "".join(c.items[0].data for c in chunks) == data
    assert chunks[0].items[0].meta.size == len(data.encode("utf-8"))  # bytes, in the first only
    assert all(c.items[0].meta is None for c in chunks[1:])
    assert [c.items[0].more_data for c in chunks] == [True] * (len(chunks) - 1) + [False]


def test_what_cannot_be_split() -> None:
    assert split(syncml.Atomic(cmd_id=1, commands=(_replace("x" * 100),)), 50) is None
    assert split(_replace(""), 50) is None
    assert split(_replace("x" * 100), 10) is None  # not even one character fits


def test_a_big_command_goes_whole_without_a_device_limit_and_alone() -> None:
    reply = Reply(REQUEST, msg_id=1)
    reply.status(syncml.header_status(REQUEST, StatusCode.OK, cmd_id=reply.cmd_id()))
    assert reply.place(REF, _replace("x" * 10_000), budget=2000, device_limit=False) == [2]
    assert reply.final and reply.pending == ()
    assert reply.place(QueuedRef(8, "c-8"), _replace("y"), budget=2000, device_limit=False) is None
    assert reply.placed == [Placed(1, 2, REF, True)]


def test_with_a_device_limit_the_first_chunk_goes_and_the_message_has_no_final() -> None:
    reply = Reply(REQUEST, msg_id=4)
    reply.status(syncml.header_status(REQUEST, StatusCode.OK, cmd_id=reply.cmd_id()))
    assert reply.place(REF, _replace("x" * 10_000), budget=2000, device_limit=True) == [2]
    assert not reply.final and len(reply.pending) > 1 and reply.size <= 2000
    message = syncml.parse_message(reply.build())
    assert message.final is False and message.commands[1].items[0].more_data
    assert reply.placed == [Placed(4, 2, REF, False)]
    # The next messages carry the next chunks; the last one is the command's own Status.
    pending, msg_id = reply.pending, 5
    while pending:
        following = Reply(REQUEST, msg_id=msg_id)
        following.status(syncml.header_status(REQUEST, StatusCode.OK, cmd_id=following.cmd_id()))
        pending = following.next_chunk(pending)
        assert following.final is (not pending)
        assert following.placed == [Placed(msg_id, 2, REF, not pending)]
        msg_id += 1


def test_a_device_package_goes_on_with_alert_1222() -> None:
    reply = Reply(REQUEST, msg_id=1)
    reply.status(syncml.header_status(REQUEST, StatusCode.OK, cmd_id=reply.cmd_id()))
    reply.next_message()
    assert [(type(c).__name__, getattr(c, "data", None)) for c in reply.commands] == [
        ("Alert", AlertCode.NEXT_MESSAGE)
    ]


# -- the device's chunks -----------------------------------------------------------------------


def _results(data: str, *, more: bool, size: int | None = None) -> syncml.Results:
    meta = syncml.Meta(size=size, format="chr") if size is not None else None
    return syncml.Results(
        cmd_id=3,
        msg_ref=2,
        cmd_ref=5,
        items=(syncml.Item(source="./X", data=data, more_data=more, meta=meta),),
    )


def test_the_devices_chunks_are_put_together_and_held_replies_released() -> None:
    first = absorb(_results("abé", more=True, size=7), None)
    assert (first.command, first.code) == (None, StatusCode.CHUNK_ACCEPTED)
    assert first.incoming.answering == (2, 5)
    held = syncml.Status(cmd_id=2, msg_ref=2, cmd_ref=5, cmd="Get", data=200)
    incoming = dataclasses.replace(first.incoming, held=(held,))
    last = absorb(_results("def", more=False), incoming)
    assert last.code is None and last.incoming is None and last.released == (held,)
    assert last.command.items[0].data == "abédef" and last.command.items[0].meta.format == "chr"


@pytest.mark.parametrize(
    ("tail", "code"), [("too long", StatusCode.SIZE_MISMATCH), ("x", StatusCode.SIZE_MISMATCH)]
)
def test_a_size_that_does_not_add_up_is_424(tail: str, code: int) -> None:
    first = absorb(_results("abc", more=True, size=99), None)
    assert absorb(_results(tail, more=False), first.incoming).code == code


def test_an_object_too_large_is_413() -> None:
    first = absorb(_results("a" * 10, more=True), None, max_bytes=15)
    assert absorb(_results("b" * 10, more=True), first.incoming, max_bytes=15).code == (
        StatusCode.REQUEST_ENTITY_TOO_LARGE
    )


def test_a_new_object_ends_the_unfinished_one() -> None:
    first = absorb(_results("abc", more=True), None)
    held = syncml.Status(cmd_id=2, msg_ref=2, cmd_ref=5, cmd="Get", data=200)
    other = syncml.Replace(cmd_id=4, items=(syncml.Item(source="./Y", data="new"),))
    after = absorb(other, dataclasses.replace(first.incoming, held=(held,)))
    assert after.command == other and after.incoming is None and after.released == (held,)


# -- stored form -------------------------------------------------------------------------------


def test_a_state_survives_its_stored_form() -> None:
    state = SessionState(
        session_id="1A",
        client_msg_id=4,
        server_msg_id=3,
        placed=(Placed(1, 2, REF, True), Placed(2, 3, QueuedRef(8, "c-8"), False)),
        pending=(PendingChunk(REF, _replace("chunk é")),),
        incoming=Assembly(
            name="Results",
            uri="./X",
            data="ab",
            size=4,
            meta=syncml.Meta(format="b64"),
            answering=(2, 5),
            held=(syncml.Status(cmd_id=2, msg_ref=2, cmd_ref=5, cmd="Get", data=200),),
        ),
    )
    assert load_state(dump_state(state)) == state
    assert load_state(dump_state(SessionState("2B"))) == SessionState("2B")
    assert state.index()[(2, 3)].command == QueuedRef(8, "c-8")


# -- the header alone ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGE)
def test_the_header_alone_is_the_messages_header(message) -> None:
    built = syncml.build_message(message)
    if built.index(b"</SyncHdr>") < syncml.reader.HEADER_WINDOW:
        assert syncml.parse_header(built) == message.header


def test_the_header_is_read_without_the_rest() -> None:
    header = syncml.build_message(syncml.Message(header=REQUEST))
    head = header[: header.index(b"<SyncBody")]
    broken = head + b"<SyncBody>" + b"<Item/>" * 100_000 + b"&broken;"  # 700 kB, never well-formed
    assert syncml.parse_header(broken) == REQUEST
    with pytest.raises(MalformedMessage, match="not well-formed"):
        syncml.parse_message(broken)


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", MalformedMessage, "empty"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><SyncML/>', HostileInput, "DTD"),
        (b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>' + b"x" * 20_000, MalformedMessage, "first"),
        (b"<SyncHdr><SessionID>1</SessionID></SyncHdr>", MalformedMessage, "not a child of SyncML"),
        (b'<SyncML xmlns="urn:other"><SyncHdr/></SyncML>', MalformedMessage, "namespace"),
        (b"<SyncML><SyncHdr><<</SyncHdr>", MalformedMessage, "not well-formed"),
    ],
)
def test_a_header_that_cannot_be_read_says_why(data: bytes, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        syncml.parse_header(data)


@pytest.mark.parametrize("name", [n for n in family("syncml") if b"<SyncHdr" in vector(n)])
def test_every_syncml_vector_has_its_header_read_alone(name: str) -> None:
    data = vector(name)
    assert syncml.parse_header(data) == syncml.parse_message(data).header
