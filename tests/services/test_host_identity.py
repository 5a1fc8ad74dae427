"""Host identity (docs/host-identity.md): a PC winmdm knows keeps its team and history however it
comes back, but ids a PC reports about itself (HWDevID, DeviceID, SMBIOS serial) never take over a
host that still checks in. Whole app in-process, OMA-DM by the emulator, both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.models import CertificateStatus, MDMStatus
from winmdm.protocol.syncml import StatusCode
from winmdm.runtime import Runtime
from winmdm.web.ui.activity_text import describe_activity


@pytest.fixture
def enroll(client, entra, clock):
    def make(device: WindowsDevice, serial: str, upn: str = "alice@corp.example") -> ManagedDevice:
        device.enroll(
            client,
            SERVER + "/EnrollmentServer/Discovery.svc",
            email=upn,
            token=entra.token(tenant_id=TENANT, audience=SERVER, upn=upn, issued_at=clock.now),
        )
        return ManagedDevice(device, serial=serial)

    return make


def _host(runtime: Runtime, device: WindowsDevice):
    with runtime.storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
        return None if enrollment is None else tx.hosts.get(enrollment.host_id)


def _in_team(runtime: Runtime, host_id: int, name: str) -> int:
    with runtime.storage.transaction() as tx:
        team = tx.teams.create(name, at=tx.hosts.get(host_id).created_at)
        tx.hosts.set_team(host_id, team.id)
    return team.id


def _conflicts(runtime: Runtime, host_id: int) -> list[dict]:
    with runtime.storage.transaction() as tx:
        return [a.details for a in tx.activities.list(host_id=host_id) if a.type == "host_identity_conflict"]


def test_a_reinstalled_pc_is_recognised_by_its_serial_once_the_old_install_is_silent(
    runtime, client, enroll, clock
) -> None:
    first = enroll(WindowsDevice(), serial="PF3ABCDE")
    first.session(client)
    original = _host(runtime, first.device)
    team = _in_team(runtime, original.id, "Finance")
    clock.advance(timedelta(days=30))  # reinstalled: the old installation is gone for good
    # New DeviceID and HWDevID, same hardware serial. A new host appears, in No team…
    again = enroll(WindowsDevice(), serial="PF3ABCDE")
    assert _host(runtime, again.device).id != original.id
    assert _host(runtime, again.device).team_id is None
    again.session(client)  # …until inventory reports the serial: then it is the same PC.
    host = _host(runtime, again.device)
    assert host.id == original.id and host.team_id == team
    assert host.mdm_status is MDMStatus.ON and host.device_id == again.device.device_id
    with runtime.storage.transaction() as tx:
        enrollments = tx.enrollments.list_for_host(host.id)
        certificates = tx.certificates.list_for_host(host.id)
        kinds = [a.type for a in tx.activities.list(host_id=host.id)]
    assert [e.active for e in enrollments] == [False, True]
    assert [c.status for c in certificates] == [CertificateStatus.REVOKED, CertificateStatus.ACTIVE]
    assert kinds.count("fleet_enrolled") == 2 and "mdm_enrolled" in kinds  # the history is kept
    assert "host_identity_conflict" not in kinds
    assert first.session(client).header_codes == [403]  # the old installation's identity is gone


def test_a_serial_of_a_host_that_still_checks_in_does_not_take_it_over(
    runtime, client, enroll, clock
) -> None:
    victim = enroll(WindowsDevice(), serial="5CG1234XYZ")
    victim.session(client)
    original = _host(runtime, victim.device)
    team = _in_team(runtime, original.id, "Finance")
    clock.advance(timedelta(days=29))
    victim.session(client)  # still in use
    impostor = enroll(WindowsDevice(), serial="5CG1234XYZ", upn="mallory@corp.example")
    impostor.session(client)
    impostor.session(client)
    theirs = _host(runtime, impostor.device)
    assert theirs.id != original.id and theirs.team_id is None and theirs.serial == "5CG1234XYZ"
    mine = _host(runtime, victim.device)
    assert (mine.id, mine.team_id, mine.mdm_status) == (original.id, team, MDMStatus.ON)
    assert victim.session(client).header_codes == [StatusCode.OK]  # its enrollment still works
    # Recorded once, for an admin to look at: which host the newcomer claimed to be.
    assert _conflicts(runtime, theirs.id) == [
        {
            "host_display_name": theirs.display_name,
            "claimed_host_id": original.id,
            "claimed_host_display_name": original.display_name,
            "matched": "serial",
        }
    ]


@pytest.mark.parametrize("claim", ["hw_dev_id", "device_id"])
def test_reported_hardware_ids_of_a_host_in_use_do_not_take_it_over(runtime, client, enroll, claim) -> None:
    victim = enroll(WindowsDevice(), serial="SN-VICTIM")
    victim.session(client)
    original = _host(runtime, victim.device)
    team = _in_team(runtime, original.id, "Finance")
    impostor = enroll(WindowsDevice(**{claim: getattr(victim.device, claim)}), serial="SN-OTHER")
    with runtime.storage.transaction() as tx:
        claims = tx.enrollments.active_by_device_id(impostor.device.device_id)
    newcomer = claims[0].host_id
    assert newcomer != original.id
    impostor.session(client)
    assert victim.session(client).header_codes == [StatusCode.OK]
    with runtime.storage.transaction() as tx:
        assert tx.hosts.get(original.id).team_id == team
        assert tx.hosts.get(newcomer).team_id is None and tx.hosts.get(newcomer).mdm_status is MDMStatus.ON
        assert {c.status for c in tx.certificates.list_for_host(original.id)} == {CertificateStatus.ACTIVE}
        assert tx.enrollments.active_for_host(original.id) is not None
    assert [c["matched"] for c in _conflicts(runtime, newcomer)] == [claim]


def test_two_pcs_claiming_one_device_id_each_speak_for_their_own_host(runtime, client, enroll) -> None:
    """The digest Cred tells them apart: a command for one never reaches the other."""
    victim = enroll(WindowsDevice(), serial="SN-1")
    victim.session(client)
    impostor = enroll(WindowsDevice(device_id=victim.device.device_id), serial="SN-2")
    impostor.session(client)
    with runtime.storage.transaction() as tx:
        victim_host, impostor_host = (
            e.host_id for e in reversed(tx.enrollments.active_by_device_id(victim.device.device_id))
        )
    command = runtime.commands.reboot(victim_host, actor="admin")
    assert impostor.session(client).received == []
    assert [c.items[0].target for c in victim.session(client).received] == [
        "./Device/Vendor/MSFT/Reboot/RebootNow"
    ]
    assert runtime.commands.result(victim_host, command.uuid).status_code == 200
    assert impostor_host != victim_host


@pytest.mark.parametrize("serial", ["To be filled by O.E.M.", "Default string", "System Serial Number", " "])
def test_placeholder_serials_never_merge_two_pcs(runtime, client, enroll, clock, serial) -> None:
    one = enroll(WindowsDevice(), serial=serial)
    one.session(client)
    clock.advance(timedelta(days=60))
    two = enroll(WindowsDevice(), serial=serial)
    two.session(client)
    assert (
        _host(runtime, one.device) is None or _host(runtime, one.device).id != _host(runtime, two.device).id
    )
    assert _conflicts(runtime, _host(runtime, two.device).id) == []


def test_turning_mdm_off_and_on_again_keeps_one_host_and_its_team(runtime, client, enroll) -> None:
    device = WindowsDevice()
    managed = enroll(device, serial="5CG1234XYZ")
    managed.session(client)
    host = _host(runtime, device)
    team = _in_team(runtime, host.id, "Sales")
    managed.unenroll(client)  # Windows' 1226 alert: the host is Off and can be claimed at once
    managed = enroll(device, serial="5CG1234XYZ")  # same ids: the known host, never moved
    assert _host(runtime, device).mdm_status is MDMStatus.PENDING
    managed.session(client)
    after = _host(runtime, device)
    assert (after.id, after.team_id, after.mdm_status) == (host.id, team, MDMStatus.ON)
    assert _conflicts(runtime, host.id) == []


def test_the_conflict_reads_as_a_sentence_an_admin_can_act_on(runtime, client, enroll) -> None:
    victim = enroll(WindowsDevice(device_name="DESKTOP-ALICE"), serial="SN-1")
    victim.session(client)
    impostor = enroll(
        WindowsDevice(hw_dev_id=victim.device.hw_dev_id, device_name="DESKTOP-EVE"), serial="SN-2"
    )
    with runtime.storage.transaction() as tx:
        host_id = tx.enrollments.find_active_by_device_id(impostor.device.device_id).host_id
        activity = next(a for a in tx.activities.list(host_id=host_id) if a.type == "host_identity_conflict")
    original = _host(runtime, victim.device)
    assert describe_activity(activity) == (
        f"DESKTOP-EVE reported the hardware id of DESKTOP-ALICE (host {original.id}), which still checks in: "
        "kept as a host of its own"
    )
