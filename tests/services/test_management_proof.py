"""Every OMA-DM message proven, on the digest path (no client certificate: the in-process client
has no TLS), over SQLite and PostgreSQL: what a stranger who knows a DeviceID and a SessionID can
no longer do, and what the real device can always still do (docs/management.md)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice, unenroll_alert
from winmdm.domain.management import CommandState
from winmdm.domain.models import MDMStatus
from winmdm.protocol import digest, syncml
from winmdm.protocol.syncml import AlertCode, Cmd, StatusCode
from winmdm.runtime import Runtime

SETUP = (syncml.Alert(cmd_id=1, data=AlertCode.CLIENT_INITIATED_MGMT),)


@pytest.fixture
def enroll(client, entra, clock):
    def make(device: WindowsDevice | None = None) -> ManagedDevice:
        device = device or WindowsDevice()
        device.enroll(
            client,
            SERVER + "/EnrollmentServer/Discovery.svc",
            email="alice@corp.example",
            token=entra.token(tenant_id=TENANT, audience=SERVER, issued_at=clock.now),
        )
        return ManagedDevice(device)

    return make


@pytest.fixture
def managed(client, enroll) -> ManagedDevice:
    device = enroll()
    device.session(client)  # enrolled, inventoried, On
    return device


def _host(runtime: Runtime, managed: ManagedDevice):
    with runtime.storage.transaction() as tx:
        return tx.hosts.get(tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id)


def _codes(reply: syncml.Message) -> list[tuple[str, int]]:
    return [(str(c.cmd), int(c.data)) for c in reply.commands if isinstance(c, syncml.Status)]


def _header(reply: syncml.Message) -> syncml.Status:
    status = reply.commands[0]
    assert isinstance(status, syncml.Status) and status.cmd == Cmd.SYNC_HDR
    return status


# -- 1. every message proven -------------------------------------------------------------------


def test_a_digest_session_is_proven_on_every_message(runtime, client, managed) -> None:
    """No 212 without a certificate: 200 and a new nonce, so Windows sends its Cred each time."""
    host = _host(runtime, managed)
    command = runtime.commands.reboot(host.id, actor="admin")
    first = managed.message(client, SETUP, session_id="2A", msg_id=1)
    assert _header(first).data == StatusCode.OK and _header(first).chal is not None
    exec_ = next(c for c in first.commands if isinstance(c, syncml.Exec))
    answer = syncml.Status(cmd_id=1, msg_ref=1, cmd_ref=exec_.cmd_id, cmd="Exec", data=200)
    fake_inventory = syncml.Replace(
        cmd_id=2, items=(syncml.Item(source="./DevInfo/Mod", data="Forged Model"),)
    )
    # A stranger who knows the DeviceID and the SessionID, without a Cred: 407, nothing applied.
    stranger = managed.message(
        client, (answer, fake_inventory, unenroll_alert(cmd_id=3)), session_id="2A", msg_id=2, cred=False
    )
    assert _codes(stranger) == [("SyncHdr", StatusCode.MISSING_CREDENTIALS)]
    assert _header(stranger).chal is not None
    assert runtime.commands.result(host.id, command.uuid).state is CommandState.SENT
    with runtime.storage.transaction() as tx:
        assert tx.inventory.get_inventory(host.id).model == "XPS 13 9310 2-in-1"
    assert _host(runtime, managed).mdm_status is MDMStatus.ON
    # The device, with a Cred over the nonce of the latest Chal, is answered.
    real = managed.message(client, (answer,), session_id="2A", msg_id=3)
    assert _codes(real)[0] == ("SyncHdr", StatusCode.OK)
    assert runtime.commands.result(host.id, command.uuid).state is CommandState.DONE


def test_a_cred_is_never_accepted_twice(runtime, client, managed) -> None:
    captured = managed._cred()
    reply = managed.message(client, SETUP, session_id="3B", msg_id=1)
    assert _header(reply).data == StatusCode.OK
    header = syncml.SyncHdr(
        session_id="3B",
        msg_id=2,
        target=managed.device.enrolled.management_url,
        source=managed.device.device_id,
        source_name=managed.name,
        cred=captured,
    )
    replayed = managed.post(client, syncml.Message(header=header, commands=SETUP))
    assert _codes(replayed) == [("SyncHdr", StatusCode.INVALID_CREDENTIALS)]


# -- 2. the first nonce ------------------------------------------------------------------------


def test_the_first_session_needs_no_challenge_and_the_nonce_is_appsrvs(runtime, client, enroll) -> None:
    managed = enroll()
    app = managed.device.enrolled.document.find("APPLICATION")
    by_level = {a.value("AAUTHLEVEL"): a for a in app.all("APPAUTH")}
    appsrv, client_level = by_level["APPSRV"], by_level["CLIENT"]
    assert appsrv.value("AAUTHDATA") != client_level.value("AAUTHDATA")
    # A client taking CLIENT's nonce (the server's own) would be refused...
    managed.nonce = base64.b64decode(client_level.value("AAUTHDATA"))
    assert _header(managed.message(client, SETUP, session_id="01")).data == StatusCode.INVALID_CREDENTIALS
    # ...the APPSRV one (the client's own, which the emulator reads) at once, with no challenge.
    fresh = enroll()
    log = fresh.session(client)
    assert log.header_codes[0] == StatusCode.OK


def test_a_challenge_always_brings_a_new_nonce(runtime, client, managed) -> None:
    nonces = set()
    for msg_id, cred in ((1, False), (2, False), (3, True)):
        if cred:
            managed.credential = "not the secret"
        reply = managed.message(client, SETUP, session_id="4C", msg_id=msg_id, cred=cred)
        assert _header(reply).data in (StatusCode.MISSING_CREDENTIALS, StatusCode.INVALID_CREDENTIALS)
        nonces.add(_header(reply).chal.meta.next_nonce)
    assert len(nonces) == 3
    with runtime.storage.transaction() as tx:
        stored = tx.enrollments.find_active_by_device_id(managed.device.device_id).dm_nonce
    assert stored == base64.b64encode(managed.nonce).decode()


# -- 3. session state per enrollment; the retry cache --------------------------------------------


def test_a_re_enrolled_pc_may_start_with_the_session_id_it_used_last(runtime, client, enroll, clock) -> None:
    """Session state belongs to the enrollment: the old one's SessionID and MsgIDs mean nothing."""
    device = WindowsDevice()
    first = enroll(device)
    log = first.session(client, session_id="1")
    assert len(log.replies) >= 2  # the stored session reached MsgID 2 or more
    clock.advance(timedelta(days=30))  # the old installation is gone; the PC enrolls again
    again = enroll(device)
    log = again.session(client, session_id="1")
    assert log.header_codes[0] == StatusCode.OK
    assert any(isinstance(c, syncml.Get) for c in log.received)  # its first session's inventory
    assert _host(runtime, again).mdm_status is MDMStatus.ON


def test_a_resent_message_with_a_now_valid_cred_is_not_answered_from_the_cache(
    runtime, client, managed
) -> None:
    refused = managed.message(client, SETUP, session_id="5D", msg_id=1, cred=False)
    assert _header(refused).data == StatusCode.MISSING_CREDENTIALS
    proven = managed.message(client, SETUP, session_id="5D", msg_id=1)
    assert _header(proven).data == StatusCode.OK
    # The proven answer is the one a byte-identical retry gets.
    header = syncml.SyncHdr(
        session_id="5E",
        msg_id=1,
        target=managed.device.enrolled.management_url,
        source=managed.device.device_id,
        source_name=managed.name,
        cred=managed._cred(),
    )
    message = syncml.Message(header=header, commands=SETUP)
    first = managed.post(client, message)
    assert _header(first).data == StatusCode.OK
    assert managed.post(client, message) == first


def test_a_strangers_message_leaves_the_session_in_progress_alone(runtime, client, managed) -> None:
    host = _host(runtime, managed)
    command = runtime.commands.reboot(host.id, actor="admin")
    first = managed.message(client, SETUP, session_id="5F", msg_id=1)
    exec_ = next(c for c in first.commands if isinstance(c, syncml.Exec))
    nonce = managed.nonce
    for msg_id in (1, 9):  # a new session, or far ahead in this one: refused, and nothing moves
        stranger = managed.message(client, SETUP, session_id="5F", msg_id=msg_id, cred=False)
        assert _header(stranger).data == StatusCode.MISSING_CREDENTIALS
        assert not any(isinstance(c, syncml.Exec) for c in stranger.commands)
    answer = syncml.Status(cmd_id=1, msg_ref=1, cmd_ref=exec_.cmd_id, cmd="Exec", data=200)
    real = managed.message(client, (answer,), session_id="5F", msg_id=2)  # over the newest nonce
    assert managed.nonce != nonce and _header(real).data == StatusCode.OK
    assert real.header.msg_id == 3  # after 1 and the refusal's 2 in this session: never repeated
    assert runtime.commands.result(host.id, command.uuid).state is CommandState.DONE


# -- 4. the one-shot unenroll alert ------------------------------------------------------------


def test_the_unenroll_alert_counts_a_cred_over_the_nonce_before(runtime, client, managed) -> None:
    """The answer carrying the new nonce never reached the PC; its one 1226 must still count."""
    before = managed.nonce
    managed.message(client, SETUP, session_id="6E", msg_id=1)  # the server moved on to a new nonce
    managed.nonce = before  # ...but that answer was lost
    host_id = _host(runtime, managed).id
    reply = managed.message(client, (unenroll_alert(cmd_id=2),), session_id="6F", msg_id=1)
    assert _codes(reply) == [("SyncHdr", StatusCode.OK), ("Alert", StatusCode.OK)]
    with runtime.storage.transaction() as tx:
        host = tx.hosts.get(host_id)
        assert host.mdm_status is MDMStatus.OFF
        assert tx.enrollments.find_active_by_device_id(managed.device.device_id) is None
        assert [a.type for a in tx.activities.list(host_id=host.id, limit=1)] == ["mdm_unenrolled"]


@pytest.mark.parametrize("how", ["no cred", "wrong cred", "two nonces old"])
def test_a_strangers_unenroll_alert_changes_nothing(runtime, client, managed, how) -> None:
    if how == "wrong cred":
        managed.credential = digest.credential_hash(managed.name, "guessed")
    if how == "two nonces old":
        old = managed.nonce
        managed.message(client, SETUP, session_id="7A", msg_id=1)
        managed.message(client, SETUP, session_id="7A", msg_id=2)
        managed.nonce = old
    reply = managed.message(
        client, (unenroll_alert(cmd_id=2),), session_id="7B", msg_id=1, cred=how != "no cred"
    )
    assert [code for _, code in _codes(reply)] in (
        [StatusCode.MISSING_CREDENTIALS],
        [StatusCode.INVALID_CREDENTIALS],
    )
    assert _host(runtime, managed).mdm_status is MDMStatus.ON


# -- 5. outgoing chunking only for the device's MaxMsgSize ----------------------------------------


def _big_replace(runtime: Runtime, managed: ManagedDevice, size: int) -> str:
    value = "v" * size
    command = runtime.commands.run_syncml(
        [_host(runtime, managed).id],
        "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Test/Big</LocURI></Target>"
        f"<Data>{value}</Data></Item></Replace>",
        actor=None,
    )
    return command.uuid


def test_without_the_devices_max_msg_size_a_large_command_goes_whole(runtime, client, managed) -> None:
    uuid = _big_replace(runtime, managed, 200_000)
    log = managed.session(client)
    replaces = [c for c in log.received if isinstance(c, syncml.Replace)]
    assert len(replaces) == 1 and not replaces[0].items[0].more_data
    assert len(replaces[0].items[0].data) == 200_000 and managed.chunks_received == 0
    assert all(reply.final for reply in log.replies)
    assert runtime.commands.result(_host(runtime, managed).id, uuid).status_code == 200


def test_a_message_with_more_data_has_no_final(runtime, client, managed) -> None:
    _big_replace(runtime, managed, 20_000)
    log = managed.session(client, max_msg_size=8000)
    assert managed.chunks_received >= 2
    for reply in log.replies:
        chunked = any(i.more_data for c in reply.commands for i in getattr(c, "items", ()))
        assert reply.final is not chunked
        assert len(syncml.build_message(reply)) <= 8000
    assert managed.nodes["./Device/Vendor/MSFT/Test/Big"] == "v" * 20_000


def test_nothing_new_is_sent_while_the_devices_package_goes_on(runtime, client, managed) -> None:
    runtime.commands.reboot(_host(runtime, managed).id, actor="admin")
    first = managed.message(client, SETUP, session_id="8A", msg_id=1, final=False)
    assert [type(c).__name__ for c in first.commands if not isinstance(c, syncml.Status)] == ["Alert"]
    assert next(c for c in first.commands if isinstance(c, syncml.Alert)).data == AlertCode.NEXT_MESSAGE
    last = managed.message(client, (), session_id="8A", msg_id=2)
    assert [type(c).__name__ for c in last.commands if not isinstance(c, syncml.Status)] == ["Exec"]


def test_an_unproven_message_is_answered_from_its_header_alone(runtime, client, managed) -> None:
    """Nothing after the SyncHdr of a stranger's message is parsed: a large body costs nothing."""

    def raw(cred: bool) -> bytes:
        header = syncml.SyncHdr(
            session_id="9F",
            msg_id=1,
            target=managed.device.enrolled.management_url,
            source=managed.device.device_id,
            source_name=managed.name,
            cred=managed._cred() if cred else None,
        )
        built = syncml.build_message(syncml.Message(header=header))
        return built[: built.index(b"<SyncBody")] + b"<SyncBody>" + b"<Item/>" * 130_000 + b"&junk;"

    url = managed.device.enrolled.management_url
    headers = {"Content-Type": "application/vnd.syncml.dm+xml"}
    stranger = client.post(url, content=raw(cred=False), headers=headers)
    assert stranger.status_code == 200
    assert _codes(syncml.parse_message(stranger.content)) == [("SyncHdr", StatusCode.MISSING_CREDENTIALS)]
    managed.nonce = base64.b64decode(_header(syncml.parse_message(stranger.content)).chal.meta.next_nonce)
    proven = client.post(url, content=raw(cred=True), headers=headers)  # read whole: not SyncML
    assert proven.status_code == 400 and "not well-formed" in proven.text
