"""Every SyncML vector parses with its key fields, and survives build -> parse unchanged."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.vectors import family, vector
from winmdm.errors import MalformedMessage
from winmdm.protocol import syncml
from winmdm.protocol.syncml import (
    Add,
    Alert,
    AlertCode,
    Cmd,
    Exec,
    Get,
    Message,
    Replace,
    Results,
    Status,
    StatusCode,
    SyncHdr,
)

VECTORS = family("syncml")
MSI_URI = (
    "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/"
    "%7B6F7CB29F-1319-4816-B345-0856916EB801%7D/DownloadInstall"
)


def _root_name(name: str) -> str:
    return etree.QName(etree.fromstring(vector(name))).localname


WHOLE = [v for v in VECTORS if _root_name(v) == "SyncML"]
FRAGMENTS = [v for v in VECTORS if _root_name(v) != "SyncML"]


def test_every_vector_is_classified() -> None:
    assert len(VECTORS) >= 8
    assert "syncml/syncml_exec_unenroll.xml" in FRAGMENTS
    assert "syncml/syncml_alert_msi_install_result.xml" in FRAGMENTS


@pytest.mark.parametrize("name", WHOLE)
def test_whole_messages_round_trip(name: str) -> None:
    commands = syncml.parse_commands(vector(name))
    assert commands
    try:
        message = syncml.parse_message(vector(name))
    except MalformedMessage as exc:
        # Only the documentation sample without a SyncHdr is not a whole message.
        assert name == "syncml/syncml_msi_install_device.xml"
        assert exc.message == "SyncML has no SyncHdr"
        header = SyncHdr(session_id="1", msg_id=1, target="dev", source="https://mdm.example/")
        message = Message(header=header, commands=commands)
    assert message.commands == commands
    built = syncml.build_message(message)
    assert built.startswith(b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>')
    assert syncml.parse_message(built) == message
    assert syncml.encoded_size(message) == len(built)


@pytest.mark.parametrize("name", FRAGMENTS)
def test_fragments_round_trip(name: str) -> None:
    command = syncml.parse_fragment(vector(name))
    assert syncml.parse_commands(vector(name)) == (command,)
    header = SyncHdr(session_id="A1", msg_id=3, target="dev", source="https://mdm.example/")
    message = Message(header=header, commands=(command,), final=False)
    assert syncml.parse_message(syncml.build_message(message)) == message


def test_checkin_with_hex_session_and_md5_cred() -> None:
    m = syncml.parse_message(vector("syncml/syncml_checkin_hex_sessionid_md5cred.xml"))
    h = m.header
    assert (h.session_id, h.msg_id) == ("D", 2)
    assert h.target == "https://mdm.mattrax.app/ManagementServer/Manage.svc"
    assert (h.source, h.source_name) == ("def", "dummy")
    assert h.meta is None
    assert h.cred is not None and h.cred.data == "EVEkoFZcVgPM+ESnu9IC0g=="
    assert h.cred.meta is not None
    assert (h.cred.meta.format, h.cred.meta.type) == ("b64", syncml.AuthType.MD5)
    status, alert, event, replace = m.commands
    assert status == Status(cmd_id=1, msg_ref=0, cmd_ref=0, cmd=Cmd.SYNC_HDR, data=StatusCode.COMMAND_FAILED)
    assert status.data is StatusCode.COMMAND_FAILED and status.cmd is Cmd.SYNC_HDR
    assert alert == Alert(cmd_id=2, data=AlertCode.CLIENT_INITIATED_MGMT)
    assert isinstance(event, Alert) and event.data is AlertCode.CLIENT_EVENT
    assert event.items[0].meta is not None and event.items[0].meta.type == "com.microsoft/MDM/LoginStatus"
    assert event.items[0].data == "user"
    assert isinstance(replace, Replace) and replace.cmd_id == 4
    assert {i.source: i.data for i in replace.items} == {
        "./DevInfo/DevId": "abc",
        "./DevInfo/Man": "Dell Inc.",
        "./DevInfo/Mod": "XPS 13 9310 2-in-1",
        "./DevInfo/DmV": "1.3",
        "./DevInfo/Lang": "en-US",
        "./Vendor/MSFT/DMClient/HWDevID": "def",
    }
    assert m.final


def test_client_first_package() -> None:
    m = syncml.parse_message(vector("syncml/syncml_client_first.xml"))
    assert (m.header.session_id, m.header.msg_id, m.header.source) == ("1", 1, "{unique device id}")
    assert m.header.cred is None
    assert [c.name for c in m.commands] == ["Alert", "Replace"]
    replace = m.commands[1]
    assert isinstance(replace, Replace)
    assert [i.source for i in replace.items] == [
        "./DevInfo/DevId", "./DevInfo/Man", "./DevInfo/Mod", "./DevInfo/DmV", "./DevInfo/Lang",
    ]  # fmt: skip


def test_client_second_package_results() -> None:
    m = syncml.parse_message(vector("syncml/syncml_client_second.xml"))
    statuses = [c for c in m.commands if isinstance(c, Status)]
    results = [c for c in m.commands if isinstance(c, Results)]
    assert [(s.msg_ref, s.cmd_ref, s.cmd, s.data) for s in statuses] == [
        (1, 0, "SyncHdr", 200),
        (1, 4, "Get", 200),
        (1, 5, "Get", 200),
    ]
    assert [(r.cmd_ref, r.cmd, r.items[0].source, r.items[0].data) for r in results] == [
        (4, Cmd.GET, "./DevDetail/SwV", "[software version returned here]"),
        (5, Cmd.GET, "./DevDetail/HwV", "[hardware version returned here]"),
    ]
    assert results[0].items[0].meta == syncml.Meta(format="chr")


def test_server_reply() -> None:
    m = syncml.parse_message(vector("syncml/syncml_server_reply.xml"))
    assert m.header.target == "{unique device id}"
    assert m.commands == (
        Status(cmd_id=1, msg_ref=1, cmd_ref=0, cmd=Cmd.SYNC_HDR, data=StatusCode.OK),
        Get(cmd_id=4, items=(syncml.Item(target="./DevDetail/SwV"),)),
        Get(cmd_id=5, items=(syncml.Item(target="./DevDetail/HwV"),)),
    )
    # The same reply, built from values with the helpers the session engine uses.
    client = syncml.parse_message(vector("syncml/syncml_client_first.xml")).header
    ours = Message(
        header=syncml.reply_header(client, msg_id=1),
        commands=(syncml.header_status(client, StatusCode.OK), *m.commands[1:]),
    )
    assert ours == m


def test_user_unenroll_alert() -> None:
    m = syncml.parse_message(vector("syncml/syncml_unenroll_client_alert.xml"))
    alert = m.commands[0]
    assert isinstance(alert, Alert) and alert.data is AlertCode.GENERIC_ALERT
    (item,) = alert.items
    assert item.meta is not None
    assert (item.meta.type, item.meta.format, item.data) == (
        "com.microsoft:mdm.unenrollment.userrequest",
        "int",
        "1",
    )


def test_msi_install_job_inline_xml() -> None:
    raw = vector("syncml/syncml_msi_install_device.xml")
    assert b'xmlns="SYNCML:SYNCML1.1"' in raw
    add, execute = syncml.parse_commands(raw)
    assert add == Add(cmd_id=1, items=(syncml.Item(target=MSI_URI),))
    assert isinstance(execute, Exec) and execute.cmd_id == 67890
    (item,) = execute.items
    assert item.target == MSI_URI
    assert item.meta == syncml.Meta(format="xml", type="text/plain")
    assert item.data is not None
    # Inline XML becomes text without the inherited SyncML namespace, and parses back.
    assert item.data.startswith('<MsiInstallJob id="{9BD4F7CD-880A-40B5-B74C-1BEECB51E596}">')
    assert "SYNCML" not in item.data
    job = etree.fromstring(item.data)
    assert job.findtext("Product/Validation/FileHash") == (
        "4525065777EF18B9444ABF71DD4B48E5F64F4F0E1E029995FB8DA441CDE4296E"
    )
    assert [u.text for u in job.iter("ContentURL")][1] == "https://dp2.com/packages/myApp.msi"
    # Built, the job is escaped text inside Data.
    header = SyncHdr(session_id="1", msg_id=1, target="dev", source="srv")
    built = syncml.build_message(Message(header=header, commands=(add, execute)))
    assert b"<Data>&lt;MsiInstallJob id=" in built


def test_exec_unenroll_fragment() -> None:
    command = syncml.parse_fragment(vector("syncml/syncml_exec_unenroll.xml"))
    assert command == Exec(
        cmd_id=2,
        items=(
            syncml.Item(
                target="./Vendor/MSFT/DMClient/Provider/TestMDMServer/Unenroll",
                meta=syncml.Meta(format="chr"),
                data="TestMDMServer",
            ),
        ),
    )


def test_msi_install_result_alert_fragment() -> None:
    command = syncml.parse_fragment(vector("syncml/syncml_alert_msi_install_result.xml"))
    assert isinstance(command, Alert)
    assert (command.cmd_id, command.data) == (4, AlertCode.CLIENT_EVENT)
    (item,) = command.items
    assert item.source is not None and item.source.endswith(
        "/MSI/{AF9257BA-6BBD-4624-AA9B-0182D50292C3}/DownloadInstall"
    )
    assert item.meta == syncml.Meta(
        type="Reversed-Domain-Name:com.microsoft.mdm.win32csp_install", format="int", mark="informational"
    )
    assert item.data == "0"
