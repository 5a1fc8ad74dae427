"""Hypothesis: any well-formed Message survives build -> parse; any bytes fail only cleanly."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winmdm.errors import MalformedMessage
from winmdm.protocol import syncml
from winmdm.protocol.syncml import (
    Add,
    Alert,
    AlertCode,
    Atomic,
    Chal,
    Cmd,
    Cred,
    Delete,
    Exec,
    Get,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    Sequence,
    Status,
    StatusCode,
    SyncHdr,
    Unknown,
)

# XML 1.0 characters only; text is kept stripped (protocol.md §0), so generate it stripped.
_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
) | st.sampled_from("\t\n\r<>&\"']]>é€😀")
TEXT = st.text(_CHARS, max_size=24).map(str.strip)
WORD = TEXT.filter(bool)
OPT_TEXT = st.none() | TEXT
NUMBER = st.integers(min_value=0, max_value=10**18)
OPT_NUMBER = st.none() | NUMBER
RESERVED = {c.value for c in Cmd} | {"Final", "CmdID", "NoResp", "Meta", "Cred", "SyncHdr", "SyncBody"}
UNKNOWN_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in RESERVED
)

META = st.builds(
    Meta,
    format=OPT_TEXT,
    type=OPT_TEXT,
    mark=OPT_TEXT,
    size=OPT_NUMBER,
    next_nonce=OPT_TEXT,
    max_msg_size=OPT_NUMBER,
    max_obj_size=OPT_NUMBER,
)
OPT_META = st.none() | META
ITEM = st.builds(
    Item, target=OPT_TEXT, source=OPT_TEXT, meta=OPT_META, data=OPT_TEXT, more_data=st.booleans()
)
ITEMS = st.lists(ITEM, max_size=3).map(tuple)
STATUS_CODE = st.sampled_from(StatusCode) | st.integers(0, 10**6).map(syncml.status_code)
ALERT_CODE = st.sampled_from(AlertCode) | st.integers(0, 10**6).map(syncml.alert_code)
CMD = st.sampled_from(Cmd) | WORD
CRED = st.builds(Cred, data=TEXT, meta=OPT_META)

ALERT = st.builds(
    Alert, cmd_id=NUMBER, data=ALERT_CODE, items=ITEMS, correlator=OPT_TEXT, no_resp=st.booleans()
)
STATUS = st.builds(
    Status,
    cmd_id=NUMBER,
    msg_ref=OPT_NUMBER,
    cmd_ref=NUMBER,
    cmd=CMD,
    data=STATUS_CODE,
    target_refs=st.lists(TEXT, max_size=2).map(tuple),
    source_refs=st.lists(TEXT, max_size=2).map(tuple),
    cred=st.none() | CRED,
    chal=st.none() | st.builds(Chal, meta=META),
    items=ITEMS,
    original_error=OPT_TEXT,
)
RESULTS = st.builds(
    Results,
    cmd_id=NUMBER,
    cmd_ref=NUMBER,
    msg_ref=OPT_NUMBER,
    cmd=st.none() | CMD,
    meta=OPT_META,
    items=ITEMS,
)
ITEM_COMMANDS = st.one_of(
    *(
        st.builds(kind, cmd_id=NUMBER, items=ITEMS, meta=OPT_META, no_resp=st.booleans())
        for kind in (Get, Add, Replace, Delete)
    ),
    st.builds(Exec, cmd_id=NUMBER, items=ITEMS, meta=OPT_META, no_resp=st.booleans(), correlator=OPT_TEXT),
)
UNKNOWN = st.builds(Unknown, name=UNKNOWN_NAME, cmd_id=NUMBER)
COMMAND = st.recursive(
    ALERT | STATUS | RESULTS | ITEM_COMMANDS | UNKNOWN,
    lambda inner: st.one_of(
        *(
            st.builds(
                kind,
                cmd_id=NUMBER,
                commands=st.lists(inner, max_size=3).map(tuple),
                meta=OPT_META,
                no_resp=st.booleans(),
            )
            for kind in (Atomic, Sequence)
        )
    ),
    max_leaves=8,
)
HEADER = st.builds(
    SyncHdr,
    session_id=WORD,
    msg_id=NUMBER,
    target=TEXT,
    source=TEXT,
    target_name=OPT_TEXT,
    source_name=OPT_TEXT,
    resp_uri=OPT_TEXT,
    cred=st.none() | CRED,
    meta=OPT_META,
    ver_dtd=st.sampled_from(["1.2", "1.1"]) | WORD,
    ver_proto=st.sampled_from(["DM/1.2"]) | WORD,
)
MESSAGE = st.builds(
    Message, header=HEADER, commands=st.lists(COMMAND, max_size=5).map(tuple), final=st.booleans()
)


def _nested(commands: tuple[syncml.Command, ...]) -> int:
    return sum(1 + _nested(c.commands) if isinstance(c, Atomic | Sequence) else 1 for c in commands)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGE)
def test_build_then_parse_returns_the_same_message(message: Message) -> None:
    built = syncml.build_message(message)
    again = syncml.parse_message(built)
    assert again == message
    assert _nested(again.commands) == _nested(message.commands)
    assert syncml.encoded_size(message) == len(built)
    assert syncml.build_message(again) == built


@settings(max_examples=150, deadline=None)
@given(COMMAND)
def test_a_built_command_parses_back_alone(command: syncml.Command) -> None:
    header = SyncHdr(session_id="1", msg_id=1, target="t", source="s")
    built = syncml.build_message(Message(header=header, commands=(command,), final=False))
    # Without SyncHdr, as documentation samples and admin profiles come.
    headerless = built[: built.index(b"<SyncHdr>")] + built[built.index(b"</SyncHdr>") + len(b"</SyncHdr>") :]
    assert syncml.parse_commands(headerless) == (command,)
    # As a lone element in no namespace, like the CSP documents' fragments.
    start = built.index(b"<SyncBody") + built[built.index(b"<SyncBody") :].index(b">") + 1
    fragment = built[start : built.rindex(b"</SyncBody>")]
    if b"msft:" in fragment:  # the prefix is declared on SyncBody
        fragment = fragment.replace(b">", b' xmlns:msft="%s">' % syncml.MSFT.encode(), 1)
    assert syncml.parse_fragment(fragment) == command


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_fail_only_with_winmdm_errors(data: bytes) -> None:
    # Anything else escaping (ValueError, lxml errors, RecursionError) fails the test.
    with contextlib.suppress(MalformedMessage):  # HostileInput is a MalformedMessage
        syncml.parse_message(data)
    with contextlib.suppress(MalformedMessage):
        syncml.parse_fragment(data)


@settings(max_examples=300, deadline=None)
@given(MESSAGE, st.data())
def test_damaged_messages_fail_only_with_winmdm_errors(message: Message, data: st.DataObject) -> None:
    built = bytearray(syncml.build_message(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(built) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            built[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del built[at : at + data.draw(st.integers(1, 40))]
        else:
            snippet = data.draw(st.sampled_from([b"<Foo>", b"</Item>", b"<CmdID>x</CmdID>", b"&", b"<Data>"]))
            built[at:at] = snippet
        if not built:
            break
    try:
        parsed = syncml.parse_message(bytes(built))
    except MalformedMessage:
        return
    assert isinstance(parsed, Message)
