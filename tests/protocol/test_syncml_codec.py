"""SyncML codec rules: DTD order when building, leniency and precise errors when parsing."""

from __future__ import annotations

import pytest
from lxml import etree

from winmdm.errors import HostileInput, MalformedMessage
from winmdm.protocol import syncml
from winmdm.protocol.syncml import (
    Alert,
    AlertCode,
    Atomic,
    Chal,
    Cmd,
    Cred,
    Exec,
    Item,
    Message,
    Meta,
    Replace,
    Sequence,
    Status,
    StatusCode,
    SyncHdr,
    Unknown,
)

NS = "{SYNCML:SYNCML1.2}"
HEADER = SyncHdr(
    session_id="1A",
    msg_id=7,
    target="https://mdm.example/manage",
    source="device-1",
    source_name="dmuser",
    resp_uri="https://mdm.example/manage?s=2",
    cred=Cred(data="c2VjcmV0", meta=Meta(format="b64", type="syncml:auth-md5")),
    meta=Meta(max_msg_size=65536, max_obj_size=1048576),
)


def _names(el: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in el]


def _message(*commands: syncml.Command, header: SyncHdr = HEADER) -> Message:
    return Message(header=header, commands=commands)


def _body(xml_body: str, *, ns: str = "SYNCML:SYNCML1.2", final: str = "<Final/>") -> bytes:
    return (
        f'<SyncML xmlns="{ns}"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>'
        "<SessionID>5</SessionID><MsgID>1</MsgID><Target><LocURI>https://s/</LocURI></Target>"
        f"<Source><LocURI>dev</LocURI></Source></SyncHdr><SyncBody>{xml_body}{final}</SyncBody></SyncML>"
    ).encode()


def test_header_children_in_dtd_order() -> None:
    root = etree.fromstring(syncml.build_message(_message()))
    assert root.tag == NS + "SyncML" and root.nsmap == {None: "SYNCML:SYNCML1.2"}
    assert _names(root) == ["SyncHdr", "SyncBody"]
    header = root[0]
    assert _names(header) == [
        "VerDTD", "VerProto", "SessionID", "MsgID", "Target", "Source", "RespURI", "Cred", "Meta",
    ]  # fmt: skip
    assert _names(header.find(NS + "Source")) == ["LocURI", "LocName"]
    assert _names(header.find(NS + "Cred")) == ["Meta", "Data"]
    assert _names(header.find(NS + "Meta")) == ["MaxMsgSize", "MaxObjSize"]
    assert _names(root[1]) == ["Final"]


def test_status_children_in_dtd_order_with_metinf_and_msft() -> None:
    status = Status(
        cmd_id=1,
        msg_ref=2,
        cmd_ref=0,
        cmd=Cmd.SYNC_HDR,
        data=StatusCode.MISSING_CREDENTIALS,
        target_refs=("https://mdm.example/manage",),
        source_refs=("device-1",),
        chal=Chal.md5("bm9uY2U="),
        items=(Item(source="./x", data="y"),),
        original_error="0x86000002",
    )
    built = syncml.build_message(_message(status))
    el = etree.fromstring(built)[1][0]
    assert _names(el) == [
        "CmdID", "MsgRef", "CmdRef", "Cmd", "TargetRef", "SourceRef", "Chal", "Data", "Item",
    ]  # fmt: skip
    meta = el.find(NS + "Chal/" + NS + "Meta")
    assert [c.tag for c in meta] == [
        "{syncml:metinf}Format", "{syncml:metinf}Type", "{syncml:metinf}NextNonce",
    ]  # fmt: skip
    # Windows expects xmlns on each Meta child, not a prefix.
    assert (
        b'<Format xmlns="syncml:metinf">b64</Format><Type xmlns="syncml:metinf">syncml:auth-md5</Type>'
        in built
    )
    assert b'<SyncBody xmlns:msft="http://schemas.microsoft.com/MobileDevice/MDM">' in built
    assert b'<Data msft:originalerror="0x86000002">407</Data>' in built
    assert syncml.parse_message(built).commands == (status,)


def test_command_and_item_children_in_dtd_order() -> None:
    meta = Meta(
        format="xml", type="text/plain", mark="m", size=10, next_nonce="n", max_msg_size=1, max_obj_size=2
    )
    item = Item(target="./t", source="./s", meta=meta, data="<x/>", more_data=True)
    execute = Exec(cmd_id=3, items=(item,), meta=Meta(format="chr"), no_resp=True, correlator="c-1")
    alert = Alert(cmd_id=4, data=AlertCode.GENERIC_ALERT, items=(item,), correlator="c-1", no_resp=True)
    atomic = Atomic(cmd_id=5, commands=(execute,), meta=Meta(format="chr"), no_resp=True)
    body = etree.fromstring(syncml.build_message(_message(execute, alert, atomic)))[1]
    assert _names(body[0]) == ["CmdID", "NoResp", "Meta", "Correlator", "Item"]
    assert _names(body[1]) == ["CmdID", "NoResp", "Data", "Correlator", "Item"]
    assert _names(body[2]) == ["CmdID", "NoResp", "Meta", "Exec"]
    assert _names(body[0][-1]) == ["Target", "Source", "Meta", "Data", "MoreData"]
    assert _names(body[0][-1][2]) == [
        "Format", "Type", "Mark", "Size", "NextNonce", "MaxMsgSize", "MaxObjSize",
    ]  # fmt: skip
    assert body[0][-1][3].text == "<x/>"  # Data is text, escaped on the wire


def test_no_declaration_and_encoded_size() -> None:
    message = _message(Replace(cmd_id=2, items=(Item(target="./é", data="ü & <"),)))
    built = syncml.build_message(message)
    assert built.startswith(b"<SyncML ")
    assert b"<Data>\xc3\xbc &amp; &lt;</Data>" in built
    assert syncml.encoded_size(message) == len(built) > len("ü & <")


def test_helpers_answer_a_client_message() -> None:
    client = SyncHdr(session_id="D", msg_id=2, target="https://srv/", source="dev")
    assert syncml.header_status(client, StatusCode.AUTHENTICATION_ACCEPTED) == Status(
        cmd_id=1, msg_ref=2, cmd_ref=0, cmd="SyncHdr", data=212
    )
    replace = Replace(cmd_id=4)
    assert syncml.command_status(replace, StatusCode.OK, cmd_id=2, msg_ref=2) == Status(
        cmd_id=2, msg_ref=2, cmd_ref=4, cmd="Replace", data=200
    )
    reply = syncml.reply_header(client, msg_id=1)
    assert (reply.session_id, reply.msg_id, reply.target, reply.source) == ("D", 1, "dev", "https://srv/")
    assert Chal.md5("bm9uY2U=").meta == Meta(format="b64", type="syncml:auth-md5", next_nonce="bm9uY2U=")


def test_parse_is_lenient_about_order_whitespace_and_namespace_case() -> None:
    data = (
        b'<SyncML xmlns="syncml:syncml1.2">\n <SyncHdr>\n  <MsgID> 3 </MsgID>\n  <SessionID>\n  ab\n </SessionID>'
        b"<Source><LocURI> dev </LocURI></Source><Target><LocURI>https://s/</LocURI></Target>"
        b"<VerProto>DM/1.2</VerProto></SyncHdr>\n <SyncBody>"
        b"<Status><Cmd>Get</Cmd><Data>\n 404 \n</Data><CmdRef>9</CmdRef><CmdID>1</CmdID><MsgRef>2</MsgRef></Status>"
        b"<Replace><Item><Data>v</Data><Source><LocURI>./a</LocURI></Source></Item><CmdID>2</CmdID></Replace>"
        b"</SyncBody></SyncML>"
    )
    m = syncml.parse_message(data)
    assert (m.header.session_id, m.header.msg_id, m.header.source, m.header.ver_dtd) == (
        "ab",
        3,
        "dev",
        "1.2",
    )
    assert m.commands == (
        Status(cmd_id=1, msg_ref=2, cmd_ref=9, cmd=Cmd.GET, data=StatusCode.NOT_FOUND),
        Replace(cmd_id=2, items=(Item(source="./a", data="v"),)),
    )
    assert not m.final


def test_syncml_1_1_and_unknown_codes_and_elements_are_kept() -> None:
    data = _body(
        "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>3</CmdRef><Cmd>Copy</Cmd><Data>299</Data></Status>"
        "<Alert><CmdID>2</CmdID><Data>1299</Data></Alert>"
        "<Copy><CmdID>3</CmdID><Item/></Copy>"
        "<Sequence><CmdID>4</CmdID><Map><CmdID>5</CmdID></Map></Sequence>",
        ns="SYNCML:SYNCML1.1",
    )
    status, alert, copy, sequence = syncml.parse_message(data).commands
    assert isinstance(status, Status) and status.data == 299 and type(status.data) is int
    assert status.cmd == "Copy" and type(status.cmd) is str
    assert isinstance(alert, Alert) and alert.data == 1299 and type(alert.data) is int
    assert copy == Unknown(name="Copy", cmd_id=3)
    assert sequence == Sequence(cmd_id=4, commands=(Unknown(name="Map", cmd_id=5),))
    again = syncml.parse_message(syncml.build_message(_message(status, alert, copy, sequence)))
    assert again.commands == (status, alert, copy, sequence)


def test_originalerror_is_kept_from_a_windows_status() -> None:
    data = _body(
        "<Status><CmdID>2</CmdID><MsgRef>1</MsgRef><CmdRef>4</CmdRef><Cmd>Replace</Cmd>"
        '<Data msft:originalerror="0x86000003" xmlns:msft="http://schemas.microsoft.com/MobileDevice/MDM">'
        "405</Data></Status>"
    )
    (status,) = syncml.parse_message(data).commands
    assert isinstance(status, Status)
    assert (status.data, status.original_error) == (StatusCode.COMMAND_NOT_ALLOWED, "0x86000003")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncBody/></SyncML>", "SyncML has no SyncHdr"),
        (
            b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><MsgID>1</MsgID></SyncHdr></SyncML>",
            "SyncHdr has no SessionID",
        ),
        (_body("").replace(b"<MsgID>1</MsgID>", b""), "SyncHdr has no MsgID"),
        (_body("").replace(b"<MsgID>1</MsgID>", b"<MsgID>x1</MsgID>"), "SyncHdr: MsgID 'x1' is not a number"),
        (_body("").replace(b"<Source><LocURI>dev</LocURI></Source>", b""), "SyncHdr has no Source/LocURI"),
        (_body("").replace(b"<SyncBody><Final/></SyncBody>", b""), "SyncML has no SyncBody"),
        (_body("<Alert><Data>1201</Data></Alert>"), "Alert in SyncBody (element 1) has no CmdID"),
        (_body("<Alert><CmdID>2</CmdID></Alert>"), "Alert CmdID 2 has no Data (the alert code)"),
        (
            _body("<Atomic><CmdID>5</CmdID><Add><CmdID>6</CmdID></Add><Replace><Item/></Replace></Atomic>"),
            "Replace in Atomic CmdID 5 (element 2) has no CmdID",
        ),
        (
            _body("<Status><CmdID>3</CmdID><CmdRef>1</CmdRef><Data>200</Data></Status>"),
            "Status CmdID 3 has no Cmd",
        ),
        (
            _body("<Status><CmdID>3</CmdID><CmdRef>1</CmdRef><Cmd>Get</Cmd><Data>OK</Data></Status>"),
            "Status CmdID 3: Data 'OK' is not a number",
        ),
        (
            _body("<Get><CmdID>3</CmdID><Item><Meta><Size>-1</Size></Meta></Item></Get>"),
            "Get CmdID 3 Item 1 Meta: Size '-1' is not a number",
        ),
        (b"<SyncML><SyncHdr/></SyncML>", "SyncML namespace is 'no namespace'"),
        (b"<Envelope xmlns='SYNCML:SYNCML1.2'/>", "root element is 'Envelope', not SyncML"),
    ],
)
def test_malformed_messages_say_what_is_missing(data: bytes, message: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        syncml.parse_message(data)
    assert caught.value.message.startswith(message)


def test_fragment_rules() -> None:
    with pytest.raises(MalformedMessage, match="expected one SyncML command element, found SyncML"):
        syncml.parse_fragment(_body(""))
    with pytest.raises(MalformedMessage, match="Exec in the fragment has no CmdID"):
        syncml.parse_fragment(b"<Exec><Item/></Exec>")
    assert syncml.parse_fragment(
        b"<Delete><CmdID>9</CmdID><Item><Target><LocURI>./a</LocURI></Target></Item></Delete>"
    )


def test_hostile_input_is_refused() -> None:
    doctype = b'<!DOCTYPE SyncML [<!ENTITY x "y">]>' + _body("")
    with pytest.raises(HostileInput):
        syncml.parse_message(doctype)
    with pytest.raises(HostileInput):
        syncml.parse_message(_body(""), max_bytes=100)
    deep = _body("<Get><CmdID>1</CmdID><Item><Data>" + "<a>" * 60 + "</a>" * 60 + "</Data></Item></Get>")
    with pytest.raises(HostileInput):
        syncml.parse_message(deep)
    with pytest.raises(MalformedMessage):
        syncml.parse_message(_body("").replace(b"<MsgID>1</MsgID>", b"<MsgID>" + b"9" * 5000 + b"</MsgID>"))


def test_building_a_non_command_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a SyncML command: Item"):
        syncml.build_message(_message(Item()))  # type: ignore[arg-type]


def test_data_keeps_its_whitespace_for_chunked_objects() -> None:
    """A chunk boundary can fall on a space: Data is read exactly as sent."""
    item = syncml.Item(target="./Device/Vendor/MSFT/Test/Log", data=" line 1;\n line ", more_data=True)
    header = syncml.SyncHdr(session_id="1", msg_id=1, target="https://mdm.example/x", source="DEV")
    message = syncml.Message(header=header, commands=(syncml.Replace(cmd_id=2, items=(item,)),))
    parsed = syncml.parse_message(syncml.build_message(message))
    assert parsed.commands[0].items[0].data == " line 1;\n line "


def test_a_namespace_holding_a_brace_is_a_wrong_namespace() -> None:
    """Found by the fuzzer: lxml's QName refused such a tag with a ValueError (a 500)."""
    data = (
        b'<SyncML xmlns="SY}NCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>'
        b"<SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>x</LocURI></Target>"
        b"<Source><LocURI>y</LocURI></Source></SyncHdr><SyncBody><Final/></SyncBody></SyncML>"
    )
    with pytest.raises(MalformedMessage, match=r"namespace is 'SY\}NCML:SYNCML1\.2'"):
        syncml.parse_header(data)
