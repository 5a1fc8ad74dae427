"""Host identity (issue "every enrollment path" item 4): a PC winmdm knows keeps its team and
history however it comes back; two PCs never merge by accident. Whole app in-process, both DBs."""

from __future__ import annotations

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.models import CertificateStatus, MDMStatus
from winmdm.runtime import Runtime


@pytest.fixture
def enroll(client, entra):
    def make(device: WindowsDevice, serial: str) -> ManagedDevice:
        device.enroll(
            client,
            SERVER + "/EnrollmentServer/Discovery.svc",
            email="alice@corp.example",
            token=entra.token(tenant_id=TENANT, audience=SERVER),
        )
        return ManagedDevice(device, serial=serial)

    return make


def _host(runtime: Runtime, device: WindowsDevice):
    with runtime.storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
        return None if enrollment is None else tx.hosts.get(enrollment.host_id)


def test_a_reinstalled_pc_is_recognised_by_its_serial_and_keeps_its_team(runtime, client, enroll) -> None:
    first = enroll(WindowsDevice(), serial="PF3ABCDE")
    first.session(client)
    original = _host(runtime, first.device)
    with runtime.storage.transaction() as tx:
        team = tx.teams.create("Finance", at=original.created_at)
        tx.hosts.set_team(original.id, team.id)
    # Reinstalled: new DeviceID and HWDevID, same hardware serial. A new host appears, in No team…
    again = enroll(WindowsDevice(), serial="PF3ABCDE")
    assert _host(runtime, again.device).id != original.id
    assert _host(runtime, again.device).team_id is None
    again.session(client)  # …until inventory reports the serial: then it is the same PC.
    host = _host(runtime, again.device)
    assert host.id == original.id and host.team_id == team.id
    assert host.mdm_status is MDMStatus.ON and host.device_id == again.device.device_id
    with runtime.storage.transaction() as tx:
        enrollments = tx.enrollments.list_for_host(host.id)
        certificates = tx.certificates.list_for_host(host.id)
        kinds = [a.type for a in tx.activities.list(host_id=host.id)]
    assert [e.active for e in enrollments] == [False, True]
    assert [c.status for c in certificates] == [CertificateStatus.REVOKED, CertificateStatus.ACTIVE]
    assert kinds.count("fleet_enrolled") == 2 and "mdm_enrolled" in kinds  # the history is kept
    assert first.session(client).header_codes == [403]  # the old installation's identity is gone


@pytest.mark.parametrize("serial", ["To be filled by O.E.M.", "Default string", "System Serial Number", " "])
def test_placeholder_serials_never_merge_two_pcs(runtime, client, enroll, serial) -> None:
    one = enroll(WindowsDevice(), serial=serial)
    one.session(client)
    two = enroll(WindowsDevice(), serial=serial)
    two.session(client)
    assert _host(runtime, one.device).id != _host(runtime, two.device).id


def test_re_enrolling_in_place_keeps_one_host_and_its_team(runtime, client, enroll) -> None:
    device = WindowsDevice()
    managed = enroll(device, serial="5CG1234XYZ")
    managed.session(client)
    host = _host(runtime, device)
    with runtime.storage.transaction() as tx:
        team = tx.teams.create("Sales", at=host.created_at)
        tx.hosts.set_team(host.id, team.id)
    managed = enroll(device, serial="5CG1234XYZ")  # same ids: the known host, never moved
    assert _host(runtime, device).mdm_status is MDMStatus.PENDING
    managed.session(client)
    after = _host(runtime, device)
    assert (after.id, after.team_id, after.mdm_status) == (host.id, team.id, MDMStatus.ON)
