"""OMA-DM sessions of an enrolled device emulator against a running `winmdm serve` over HTTPS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice, unenroll_alert
from winmdm.domain.management import CommandKind, CommandState
from winmdm.domain.models import MDMStatus
from winmdm.protocol import syncml
from winmdm.protocol.syncml import AlertCode, Cmd, StatusCode
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage


@pytest.fixture(scope="module")
def storage(server):
    engine = create_engine_for(f"sqlite:///{server.data_dir / 'winmdm.db'}")
    yield SQLStorage(engine)
    engine.dispose()


def _enrolled(server, token, **kwargs) -> ManagedDevice:
    device = WindowsDevice(**kwargs)
    with server.client() as client:
        device.enroll(client, server.discovery_url, email="alice@corp.example", token=token())
    return ManagedDevice(device)


def _host(storage, device_id: str):
    with storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device_id)
        if enrollment is None:
            return None
        return tx.hosts.get(enrollment.host_id)


def test_first_session_reads_inventory_and_turns_the_host_on(server, token, storage) -> None:
    managed = _enrolled(server, token)
    assert _host(storage, managed.device.device_id).mdm_status is MDMStatus.PENDING
    with managed.client(server.dev_ca) as client:
        log = managed.session(client)
    assert log.header_codes[0] == StatusCode.AUTHENTICATION_ACCEPTED
    gets = [c for c in log.received if isinstance(c, syncml.Get)]
    assert gets and {i.target for i in gets[0].items} >= {
        "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
        "./DevDetail/SwV",
    }
    # Every reply starts with the Status for the SyncHdr and answers every client command.
    first = log.replies[0]
    assert first.commands[0].cmd == Cmd.SYNC_HDR and first.commands[0].cmd_id == 1
    assert {c.cmd for c in first.commands if isinstance(c, syncml.Status)} >= {"SyncHdr", "Alert", "Replace"}
    host = _host(storage, managed.device.device_id)
    assert host.mdm_status is MDMStatus.ON
    assert host.serial == managed.serial
    assert host.last_seen_at is not None
    with storage.transaction() as tx:
        inventory = tx.inventory.get_inventory(host.id)
    assert inventory.manufacturer == "Dell Inc." and inventory.model == "XPS 13 9310 2-in-1"
    # The next session is idle: authenticated with the renewed nonce, nothing to do.
    with managed.client(server.dev_ca) as client:
        idle = managed.session(client)
    assert idle.header_codes == [StatusCode.AUTHENTICATION_ACCEPTED]
    assert idle.received == []


def test_missing_and_stale_credentials_are_challenged(server, token) -> None:
    managed = _enrolled(server, token)
    with managed.client(server.dev_ca) as client:
        missing = managed.session(client, send_cred=False)
        assert missing.header_codes[:2] == [
            StatusCode.MISSING_CREDENTIALS,
            StatusCode.AUTHENTICATION_ACCEPTED,
        ]
        managed.nonce = b"stale-nonce"
        stale = managed.session(client)
        assert stale.header_codes[:2] == [StatusCode.INVALID_CREDENTIALS, StatusCode.AUTHENTICATION_ACCEPTED]
        managed.credential = "wrong"
        wrong = managed.session(client)
        assert set(wrong.header_codes) == {StatusCode.INVALID_CREDENTIALS}
        assert wrong.received == []


def test_a_certificate_of_another_device_is_refused(server, token, storage) -> None:
    victim = _enrolled(server, token)
    attacker = _enrolled(server, token)
    # The attacker knows the victim's DeviceID and even its digest secret, but holds its own cert.
    attacker.device.device_id = victim.device.device_id
    attacker.credential, attacker.name, attacker.nonce = victim.credential, victim.name, victim.nonce
    with attacker.client(server.dev_ca) as client:
        log = attacker.session(client)
    assert log.header_codes == [StatusCode.FORBIDDEN]
    assert _host(storage, victim.device.device_id).mdm_status is MDMStatus.PENDING  # nothing applied


def test_a_retried_message_gets_the_same_answer(server, token) -> None:
    managed = _enrolled(server, token)
    header = syncml.SyncHdr(
        session_id="1A",
        msg_id=1,
        target=managed.device.enrolled.management_url,
        source=managed.device.device_id,
        source_name=managed.name,
        cred=managed._cred(),
    )
    message = syncml.Message(header=header, commands=(syncml.Alert(cmd_id=1, data=1201),))
    with managed.client(server.dev_ca) as client:
        first = client.post(
            managed.device.enrolled.management_url,
            content=syncml.build_message(message),
            headers={"Content-Type": "application/vnd.syncml.dm+xml"},
        )
        again = client.post(
            managed.device.enrolled.management_url,
            content=syncml.build_message(message),
            headers={"Content-Type": "application/vnd.syncml.dm+xml"},
        )
    assert first.status_code == again.status_code == 200
    assert first.content == again.content


def test_the_device_unenrolls_itself(server, token, storage) -> None:
    managed = _enrolled(server, token)
    with managed.client(server.dev_ca) as client:
        managed.session(client)
        unenroll = syncml.Alert(
            cmd_id=4,
            data=1226,
            items=(
                syncml.Item(
                    meta=syncml.Meta(type="com.microsoft:mdm.unenrollment.userrequest", format="int"),
                    data="1",
                ),
            ),
        )
        log = managed.session(client, extra=(unenroll,))
        assert log.received == []
    host_id = _host_id(storage, managed)
    with storage.transaction() as tx:
        host = tx.hosts.get(host_id)
        certs = tx.certificates.list_for_host(host.id)
        activities = tx.activities.list(host_id=host.id)
    assert host.mdm_status is MDMStatus.OFF
    assert all(c.status.value == "revoked" for c in certs)
    assert [a.type for a in activities] == ["mdm_unenrolled", "mdm_enrolled", "fleet_enrolled"]
    enrolled = activities[1].details
    assert enrolled["enrollment"] == "manual" and enrolled["mdm_platform"] == "microsoft"
    assert enrolled["host_serial"] == managed.serial  # the first session read it before MDM turned on
    with managed.client(server.dev_ca) as client:
        after = managed.session(client)  # the certificate is revoked: refused, nothing applied
    assert after.header_codes == [StatusCode.FORBIDDEN]
    assert after.received == []


def _host_id(storage, managed) -> int:
    from winmdm.storage.schema import hosts

    with storage.transaction() as tx:
        row = tx.connection.execute(
            hosts.select().where(hosts.c.device_id == managed.device.device_id)
        ).first()
    return row.id


# -- every message proven (docs/management.md) -------------------------------------------------

SETUP = (syncml.Alert(cmd_id=1, data=AlertCode.CLIENT_INITIATED_MGMT),)


def _queue_get(storage, host_id: int) -> str:
    get = syncml.Get(cmd_id=1, items=(syncml.Item(target="./DevDetail/SwV"),))
    command_uuid = str(uuid.uuid4())
    with storage.transaction() as tx:
        command = tx.commands.create(
            CommandKind.RAW, syncml.build_fragment(get).decode(), at=datetime.now(UTC), uuid=command_uuid
        )
        tx.commands.enqueue(command.id, [host_id], datetime.now(UTC))
    return command_uuid


def _state(storage, host_id: int, command_uuid: str) -> CommandState:
    with storage.transaction() as tx:
        return tx.commands.get(host_id, command_uuid).state


def test_after_212_only_the_certificate_that_started_the_session_speaks(server, token, storage) -> None:
    """A stranger who knows the DeviceID and SessionID but holds neither the certificate nor a Cred
    can no longer take the session over: no commands, no fake answers, no unenrollment."""
    managed = _enrolled(server, token)
    with managed.client(server.dev_ca) as client:
        managed.session(client)
    host = _host(storage, managed.device.device_id)
    command = _queue_get(storage, host.id)
    with managed.client(server.dev_ca) as device, server.client() as stranger:
        first = managed.message(device, SETUP, session_id="9A", msg_id=1)
        assert first.commands[0].data == StatusCode.AUTHENTICATION_ACCEPTED
        get = next(c for c in first.commands if isinstance(c, syncml.Get))
        status = syncml.Status(cmd_id=1, msg_ref=1, cmd_ref=get.cmd_id, cmd="Get", data=200)
        forged = syncml.Results(
            cmd_id=2,
            msg_ref=1,
            cmd_ref=get.cmd_id,
            items=(syncml.Item(source="./DevDetail/SwV", data="forged"),),
        )
        hijack = managed.message(
            stranger, (status, forged, unenroll_alert(cmd_id=3)), session_id="9A", msg_id=2, cred=False
        )
        assert [(c.cmd, c.data) for c in hijack.commands] == [("SyncHdr", StatusCode.MISSING_CREDENTIALS)]
        assert _state(storage, host.id, command) is CommandState.SENT
        assert _host(storage, managed.device.device_id).mdm_status is MDMStatus.ON
        # The device goes on by its certificate alone, without a Cred (it got 212).
        genuine = syncml.Results(
            cmd_id=2,
            msg_ref=1,
            cmd_ref=get.cmd_id,
            items=(syncml.Item(source="./DevDetail/SwV", data="10.0.1"),),
        )
        real = managed.message(device, (status, genuine), session_id="9A", msg_id=3, cred=False)
        assert real.commands[0].data == StatusCode.OK and real.commands[0].chal is None
    with storage.transaction() as tx:
        done = tx.commands.get(host.id, command)
    assert done.state is CommandState.DONE
    assert [r.items for r in done.replies if r.cmd == "Results"] == [(("./DevDetail/SwV", "10.0.1"),)]


def test_the_unenroll_alert_is_proven_by_the_certificate_alone(server, token, storage) -> None:
    managed = _enrolled(server, token)
    with managed.client(server.dev_ca) as client:
        managed.session(client)
        managed.credential = "the digest secret is lost"
        reply = managed.message(client, (unenroll_alert(cmd_id=2),), session_id="1B", msg_id=1)
    assert [(c.cmd, c.data) for c in reply.commands] == [("SyncHdr", 200), ("Alert", 200)]
    assert _host_by_id(storage, _host_id(storage, managed)).mdm_status is MDMStatus.OFF


def test_a_superseded_certificate_falls_back_to_the_digest(server, token, storage) -> None:
    """A VM snapshot from before a renewal presents the old, revoked certificate: not a 403 for
    ever, but the digest path, which its credentials still pass (docs/management.md)."""
    managed = _enrolled(server, token)
    with managed.client(server.dev_ca) as client:
        managed.session(client)
    enrolled = managed.device.enrolled
    snapshot = (enrolled.certificate, enrolled.key, managed.nonce)
    with managed.client(server.dev_ca) as client:
        managed.device.renew(client)
    with managed.client(server.dev_ca) as client:
        managed.session(client)  # the new certificate's first use revokes the old one
    enrolled.certificate, enrolled.key, managed.nonce = snapshot  # the snapshot is restored
    host = _host(storage, managed.device.device_id)
    with storage.transaction() as tx:
        assert tx.certificates.get(format(enrolled.certificate.serial_number, "x")).status.value == "revoked"
    command = _queue_get(storage, host.id)
    with managed.client(server.dev_ca) as client:
        without_cred = managed.session(client, send_cred=False)
        log = managed.session(client)
    assert without_cred.header_codes[0] == StatusCode.MISSING_CREDENTIALS  # a way forward, not 403
    assert StatusCode.FORBIDDEN not in log.header_codes
    assert set(log.header_codes) == {StatusCode.OK}  # by digest: 200 and a Cred on every message
    assert _state(storage, host.id, command) is CommandState.DONE
    assert "was revoked" in server.log() and "must prove itself with its digest credentials" in server.log()


def _host_by_id(storage, host_id: int):
    with storage.transaction() as tx:
        return tx.hosts.get(host_id)
