"""The hosts admins see (HostService) and the refetch command, on SQLite and PostgreSQL: hosts
enrolled by the device emulator through the whole app in-process, or written to storage."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.storage.test_contract import new_host
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.fleet import HostFilter, HostMDMStatus, TeamScope, host_mdm_status, stored_states
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import CommandKind, CommandState
from winmdm.domain.models import MDMStatus
from winmdm.errors import AuthenticationFailed, InvalidInput, NotFound
from winmdm.protocol import syncml
from winmdm.runtime import Runtime
from winmdm.services import enrollment_path
from winmdm.services.inventory import INVENTORY_GETS

ADMIN = "admin@corp.example"
ON, OFF, PENDING = MDMStatus.ON, MDMStatus.OFF, MDMStatus.PENDING
MANUAL, AUTOMATIC = EnrollmentKind.MANUAL, EnrollmentKind.AUTOMATIC


@pytest.fixture
def managed(client, entra) -> ManagedDevice:
    """A PC that turned MDM on from Settings with a work account (Entra registered)."""
    device = WindowsDevice()
    device.enroll(
        client,
        SERVER + "/EnrollmentServer/Discovery.svc",
        email="alice@corp.example",
        token=entra.token(tenant_id=TENANT, audience=SERVER, upn="alice@corp.example"),
    )
    return ManagedDevice(device)


def host_id_of(runtime: Runtime, managed: ManagedDevice) -> int:
    with runtime.storage.transaction() as tx:
        return tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id


def seed(runtime: Runtime, n: int, **changes) -> int:
    values = {
        "uuid": f"uuid-{n}",
        "display_name": f"PC-{n}",
        "hw_dev_id": f"HW-{n}",
        "device_id": f"DEV-{n}",
        "serial": f"SN-{n}",
        "created_at": runtime.clock(),
    }
    with runtime.storage.transaction() as tx:
        return tx.hosts.create(new_host(**(values | changes))).id


def make_team(runtime: Runtime, name: str) -> int:
    return runtime.teams.create(name, actor=ADMIN).id


def activities(runtime: Runtime, type: str) -> list:
    with runtime.storage.transaction() as tx:
        return [a for a in reversed(tx.activities.list(limit=1000)) if a.type == type]


# --- the status rule -------------------------------------------------------------------------

STATUS_RULE = [
    (
        ON,
        MANUAL,
        HostMDMStatus.ON_MANUAL,
        "On (manual)",
        "MDM was turned on manually. End users can turn MDM off.",
    ),
    (
        ON,
        AUTOMATIC,
        HostMDMStatus.ON_AUTOMATIC,
        "On (automatic)",
        "MDM was turned on automatically. End users can't turn MDM off.",
    ),
    (
        ON,
        None,
        HostMDMStatus.ON_AUTOMATIC,
        "On (automatic)",
        "MDM was turned on automatically. End users can't turn MDM off.",
    ),
    *((PENDING, kind, HostMDMStatus.PENDING, "Pending", None) for kind in (MANUAL, AUTOMATIC, None)),
    *((OFF, kind, HostMDMStatus.OFF, "Off", None) for kind in (MANUAL, AUTOMATIC, None)),
]


@pytest.mark.parametrize(("stored", "kind", "status", "label", "tooltip"), STATUS_RULE)
def test_status_rule(stored, kind, status, label, tooltip) -> None:
    assert host_mdm_status(stored, kind) is status
    assert host_mdm_status(stored.value, None if kind is None else kind.value) is status
    assert status.label == label
    if tooltip is not None:
        assert status.tooltip == tooltip
    assert status.tooltip.endswith(".")
    # Storage's status filter is built from the same rule.
    assert (stored, kind) in stored_states(status)


def test_stored_states_cover_every_pair_once() -> None:
    pairs = [pair for status in HostMDMStatus for pair in stored_states(status)]
    assert len(pairs) == len(set(pairs)) == len(MDMStatus) * (len(EnrollmentKind) + 1)


# --- detail ----------------------------------------------------------------------------------


def test_detail_of_an_enrolled_host(runtime, client, managed) -> None:
    host_id = host_id_of(runtime, managed)
    pending = runtime.hosts.get(host_id)
    assert pending.mdm_status is HostMDMStatus.PENDING and pending.status_label == "Pending"
    managed.session(client)
    detail = runtime.hosts.get(host_id)
    assert detail.id == host_id and detail.mdm_status is HostMDMStatus.ON_MANUAL
    assert detail.status_label == "On (manual)"
    assert detail.mdm_status.tooltip == "MDM was turned on manually. End users can turn MDM off."
    assert detail.enrollment_kind is MANUAL
    assert detail.enrollment_path == enrollment_path.WORK_ACCOUNT == "Settings: work account (Entra)"
    assert detail.idp_username == "alice@corp.example" and detail.end_user_username is None
    assert detail.enrolled_at == runtime.clock() and detail.last_seen_at == runtime.clock()
    assert (detail.team_id, detail.team_name) == (None, None)
    assert (detail.serial, detail.display_name) == (managed.serial, managed.device.device_name)
    assert (detail.inventory.manufacturer, detail.inventory.model) == ("Dell Inc.", "XPS 13 9310 2-in-1")
    assert detail.inventory.language == "en-US" and detail.inventory.os_version == managed.device.os_version
    assert (detail.device_id, detail.hw_dev_id) == (managed.device.device_id, managed.device.hw_dev_id)
    assert detail.uuid and detail.agent is None


def test_detail_shows_the_team_and_no_path_without_an_active_enrollment(runtime) -> None:
    team = make_team(runtime, "Finance")
    host_id = seed(runtime, 1, team_id=team, mdm_status=OFF, enrollment_kind=MANUAL)
    detail = runtime.hosts.get(host_id)
    assert (detail.team_id, detail.team_name) == (team, "Finance")
    assert detail.mdm_status is HostMDMStatus.OFF and detail.status_label == "Off"
    assert detail.enrollment_path is None and detail.enrolled_at is None


def test_renewal_keeps_the_enrollment_path(runtime, client, managed) -> None:
    host_id = host_id_of(runtime, managed)
    before = runtime.hosts.get(host_id)
    managed.device.renew(client)
    after = runtime.hosts.get(host_id)
    assert after.enrollment_path == before.enrollment_path == enrollment_path.WORK_ACCOUNT
    assert after.enrolled_at == before.enrolled_at


def test_unknown_host_is_not_found_by_its_id(runtime) -> None:
    with pytest.raises(NotFound, match="no host with id 4242"):
        runtime.hosts.get(4242)


# --- list ------------------------------------------------------------------------------------


def test_list_pages_and_filters(runtime) -> None:
    finance = make_team(runtime, "Finance")
    manual = seed(runtime, 1, team_id=finance, mdm_status=ON, enrollment_kind=MANUAL)
    automatic = seed(runtime, 2, mdm_status=ON, enrollment_kind=AUTOMATIC, idp_username="bob@corp.example")
    pending = seed(runtime, 3, team_id=finance)
    page = runtime.hosts.list(HostFilter(per_page=2))
    assert [h.id for h in page.items] == [manual, automatic]
    assert (page.total, page.page, page.per_page) == (3, 1, 2)
    assert page.items[0].team_name == "Finance" and page.items[0].status_label == "On (manual)"
    assert [h.id for h in runtime.hosts.list(HostFilter(per_page=2, page=2)).items] == [pending]
    assert [h.id for h in runtime.hosts.list(HostFilter(team=finance)).items] == [manual, pending]
    assert [h.id for h in runtime.hosts.list(HostFilter(team=TeamScope.NO_TEAM)).items] == [automatic]
    only = runtime.hosts.list(HostFilter(mdm_status="on_automatic"))
    assert [h.id for h in only.items] == [automatic] and only.items[
        0
    ].mdm_status is HostMDMStatus.ON_AUTOMATIC
    assert [h.id for h in runtime.hosts.list(HostFilter(query="BOB@")).items] == [automatic]


def test_list_of_an_unknown_team_is_not_found(runtime) -> None:
    with pytest.raises(NotFound, match="no team with id 99"):
        runtime.hosts.list(HostFilter(team=99))


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"page": 0}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 501}, "per_page"),
        ({"mdm_status": "on"}, "mdm_status"),
        ({"team": 0}, "team_id"),
        ({"query": "x" * 256}, "query"),
    ],
)
def test_a_bad_filter_names_its_field(arguments, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        HostFilter(**arguments)
    assert caught.value.field == field


# --- delete ----------------------------------------------------------------------------------


def test_deleted_host_is_forgotten_and_its_certificate_stops_working(runtime, client, managed) -> None:
    managed.session(client)
    host_id = host_id_of(runtime, managed)
    certificate = managed.device.enrolled.certificate
    assert runtime.certificates.authenticate(certificate).host_id == host_id
    runtime.hosts.delete(host_id, actor=ADMIN)
    with pytest.raises(NotFound):
        runtime.hosts.get(host_id)
    with pytest.raises(AuthenticationFailed):
        runtime.certificates.authenticate(certificate)
    # The PC can no longer be managed: its next session is refused.
    assert managed.session(client).header_codes == [403]
    [deleted] = activities(runtime, "deleted_host")
    assert deleted.actor == ADMIN and deleted.host_id is None
    assert deleted.details == {
        "host_id": host_id,
        "host_serial": managed.serial,
        "host_display_name": managed.device.device_name,
        "revoked_certificates": 1,
    }
    # Its earlier activities stay in the fleet's feed.
    assert [a.host_id for a in activities(runtime, "mdm_enrolled")] == [None]


def test_deleting_an_unknown_host_is_not_found(runtime) -> None:
    with pytest.raises(NotFound, match="no host with id 77"):
        runtime.hosts.delete(77, actor=ADMIN)


def test_a_deleted_pc_can_enroll_again_as_a_new_host(runtime, client, managed, entra) -> None:
    old = runtime.hosts.get(host_id_of(runtime, managed))
    runtime.hosts.delete(old.id, actor=ADMIN)
    managed.device.enroll(
        client,
        SERVER + "/EnrollmentServer/Discovery.svc",
        email="alice@corp.example",
        token=entra.token(tenant_id=TENANT, audience=SERVER),
    )
    again = ManagedDevice(managed.device, serial=managed.serial)
    assert again.session(client).header_codes[-1] == 200
    # A new record (SQLite may hand out the deleted id again: its rowids are max + 1).
    new = runtime.hosts.get(host_id_of(runtime, again))
    assert new.uuid != old.uuid and new.mdm_status is HostMDMStatus.ON_MANUAL


# --- transfer --------------------------------------------------------------------------------


def test_transfer_moves_hosts_and_records_one_activity_each(runtime) -> None:
    finance = make_team(runtime, "Finance")
    sales = make_team(runtime, "Sales")
    a = seed(runtime, 1)
    b = seed(runtime, 2, team_id=sales)
    c = seed(runtime, 3, team_id=finance)
    assert runtime.hosts.transfer(finance, [a, b, c, a], actor=ADMIN) == 2
    assert {h.id for h in runtime.hosts.list(HostFilter(team=finance)).items} == {a, b, c}
    moved = activities(runtime, "transferred_host")
    assert [(m.host_id, m.actor) for m in moved] == [(a, ADMIN), (b, ADMIN)]
    assert moved[1].details == {
        "host_serial": "SN-2",
        "host_display_name": "PC-2",
        "team_id": finance,
        "team_name": "Finance",
        "previous_team_id": sales,
        "previous_team_name": "Sales",
    }
    # Already there: nothing moves, nothing is recorded.
    assert runtime.hosts.transfer(finance, [a, b], actor=ADMIN) == 0
    assert len(activities(runtime, "transferred_host")) == 2
    # None and 0 are both No team.
    assert runtime.hosts.transfer(None, [a], actor=ADMIN) == 1
    assert runtime.hosts.transfer(0, [b], actor=ADMIN) == 1
    assert [h.id for h in runtime.hosts.list(HostFilter(team=TeamScope.NO_TEAM)).items] == [a, b]
    assert activities(runtime, "transferred_host")[-1].details["team_name"] == "No team"


def test_transfer_is_all_or_nothing(runtime) -> None:
    finance = make_team(runtime, "Finance")
    a = seed(runtime, 1)
    with pytest.raises(NotFound, match="no host with id 999"):
        runtime.hosts.transfer(finance, [a, 999], actor=ADMIN)
    with pytest.raises(NotFound, match="no team with id 555"):
        runtime.hosts.transfer(555, [a], actor=ADMIN)
    assert runtime.hosts.get(a).team_id is None
    assert activities(runtime, "transferred_host") == []


@pytest.mark.parametrize(
    ("host_ids", "field"),
    [([], "host_ids"), ([1, 0], "host_ids[1]"), ([1, "2"], "host_ids[1]"), ([True], "host_ids[0]")],
)
def test_transfer_names_a_bad_host_id(runtime, host_ids, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        runtime.hosts.transfer(None, host_ids, actor=ADMIN)
    assert caught.value.field == field


# --- summary ---------------------------------------------------------------------------------


def counts(on_automatic=0, on_manual=0, off=0, pending=0) -> dict[HostMDMStatus, int]:
    return {
        HostMDMStatus.ON_AUTOMATIC: on_automatic,
        HostMDMStatus.ON_MANUAL: on_manual,
        HostMDMStatus.OFF: off,
        HostMDMStatus.PENDING: pending,
    }


def test_summary_counts_per_status_and_team(runtime) -> None:
    sales = make_team(runtime, "Sales")
    finance = make_team(runtime, "Finance")
    empty = make_team(runtime, "Empty")
    seed(runtime, 1, team_id=finance, mdm_status=ON, enrollment_kind=MANUAL)
    seed(runtime, 2, team_id=finance, mdm_status=ON, enrollment_kind=AUTOMATIC)
    seed(runtime, 3, team_id=finance, mdm_status=ON, enrollment_kind=MANUAL)
    seed(runtime, 4, mdm_status=ON, enrollment_kind=None)  # before the kind was recorded
    seed(runtime, 5, mdm_status=OFF)
    seed(runtime, 6, team_id=sales)
    summary = runtime.hosts.summary()
    assert summary.counts == counts(on_automatic=2, on_manual=2, off=1, pending=1) and summary.total == 6
    rows = [(r.team_id, r.name, dict(r.counts), r.total) for r in summary.teams]
    assert rows == [
        (None, "No team", counts(on_automatic=1, off=1), 2),
        (empty, "Empty", counts(), 0),
        (finance, "Finance", counts(on_automatic=1, on_manual=2), 3),
        (sales, "Sales", counts(pending=1), 1),
    ]
    only = runtime.hosts.summary(finance)
    assert only.counts == counts(on_automatic=1, on_manual=2) and only.total == 3
    assert [(r.team_id, r.name) for r in only.teams] == [(finance, "Finance")]
    no_team = runtime.hosts.summary(TeamScope.NO_TEAM)
    assert no_team.total == 2 and [r.name for r in no_team.teams] == ["No team"]
    with pytest.raises(NotFound, match="no team with id 404"):
        runtime.hosts.summary(404)


def test_summary_of_an_empty_fleet(runtime) -> None:
    summary = runtime.hosts.summary()
    assert summary.counts == counts() and summary.total == 0
    assert [(r.team_id, r.name, r.total) for r in summary.teams] == [(None, "No team", 0)]


# --- refetch ---------------------------------------------------------------------------------


def test_refetch_reads_the_inventory_again(runtime, client, managed, clock) -> None:
    managed.session(client)
    host_id = host_id_of(runtime, managed)
    managed.nodes["./DevDetail/Ext/Microsoft/DeviceName"] = "DESKTOP-RENAMED"
    managed.nodes["./DevDetail/SwV"] = "10.0.26100.2605"
    clock.advance(timedelta(hours=1))
    command = runtime.commands.refetch(host_id, actor=ADMIN)
    assert command.kind is CommandKind.INVENTORY and command.actor == ADMIN
    log = managed.session(client)
    [get] = log.received
    assert isinstance(get, syncml.Get) and tuple(i.target for i in get.items) == INVENTORY_GETS
    assert runtime.commands.result(host_id, command.uuid).state is CommandState.DONE
    detail = runtime.hosts.get(host_id)
    assert (detail.display_name, detail.os_version) == ("DESKTOP-RENAMED", "10.0.26100.2605")
    assert detail.serial == managed.serial and detail.mdm_status is HostMDMStatus.ON_MANUAL
    [recorded] = activities(runtime, "command_inventory")
    assert recorded.actor == ADMIN and recorded.details["host_ids"] == [host_id]
    assert managed.session(client).received == []  # done once


def test_refetch_of_an_unknown_host_is_not_found(runtime) -> None:
    with pytest.raises(NotFound, match="no host with id 31"):
        runtime.commands.refetch(31, actor=ADMIN)
