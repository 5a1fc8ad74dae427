"""The storage contract for management: inventory, profiles, agent, activities, and the
enrollment lookups an OMA-DM session needs. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.storage.test_contract import T0, enrolled, new_enrollment, new_host
from winmdm.domain.management import (
    AgentPackage,
    AgentStatus,
    HostAgent,
    HostProfile,
    Inventory,
    ProfileStatus,
)
from winmdm.domain.models import MDMStatus
from winmdm.errors import Conflict, NotFound
from winmdm.storage import management_protocols, sql_rows
from winmdm.storage.protocols import EnrollmentStore, Transaction
from winmdm.storage.schema import teams
from winmdm.storage.sql import SQLEnrollmentStore, SQLStorage
from winmdm.storage.sql_commands import SQLCommandQueue, SQLSessionStore
from winmdm.storage.sql_management import (
    SQLActivityStore,
    SQLAgentStore,
    SQLInventoryStore,
    SQLProfileStore,
)

IMPLEMENTATIONS = {
    management_protocols.InventoryStore: SQLInventoryStore,
    management_protocols.SessionStore: SQLSessionStore,
    management_protocols.CommandQueue: SQLCommandQueue,
    management_protocols.ProfileStore: SQLProfileStore,
    management_protocols.AgentStore: SQLAgentStore,
    management_protocols.ActivityStore: SQLActivityStore,
    EnrollmentStore: SQLEnrollmentStore,
}


@pytest.mark.parametrize("protocol", IMPLEMENTATIONS, ids=lambda p: p.__name__)
def test_every_management_method_is_implemented(protocol: type) -> None:
    impl = IMPLEMENTATIONS[protocol]
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        wanted = inspect.signature(member).parameters
        got = inspect.signature(getattr(impl, name)).parameters
        assert list(got) == list(wanted), f"{impl.__name__}.{name} parameters differ"
        for parameter in wanted.values():
            assert got[parameter.name].kind == parameter.kind, f"{impl.__name__}.{name}({parameter.name})"
            assert got[parameter.name].default == parameter.default, (
                f"{impl.__name__}.{name}({parameter.name})"
            )


def test_transaction_reaches_every_store(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        for name in Transaction.__annotations__:
            assert hasattr(tx, name), name
        assert isinstance(tx.commands, SQLCommandQueue) and isinstance(tx.activities, SQLActivityStore)


def make_team(storage: SQLStorage, name: str) -> int:
    with storage.transaction() as tx:
        return tx.connection.execute(
            teams.insert().values(name=name, created_at=T0).returning(teams.c.id)
        ).scalar_one()


# --- enrollments: OMA-DM lookups -------------------------------------------------------------


def test_renew_nonce_keeps_the_one_before(storage: SQLStorage) -> None:
    _, enrollment_id = enrolled(storage)
    with storage.transaction() as tx:
        assert tx.enrollments.get(enrollment_id).dm_previous_nonce is None
        tx.enrollments.renew_nonce(enrollment_id, "bmV4dA==")
    with storage.transaction() as tx:
        got = tx.enrollments.get(enrollment_id)
        assert (got.dm_nonce, got.dm_previous_nonce) == ("bmV4dA==", "bm9uY2U=")
        tx.enrollments.renew_nonce(enrollment_id, "dGhpcmQ=")
    with storage.transaction() as tx:
        got = tx.enrollments.get(enrollment_id)
        assert (got.dm_nonce, got.dm_previous_nonce) == ("dGhpcmQ=", "bmV4dA==")
    with pytest.raises(NotFound), storage.transaction() as tx:
        tx.enrollments.renew_nonce(enrollment_id + 1000, "eA==")


def test_find_active_by_device_id(storage: SQLStorage) -> None:
    host_id, first_id = enrolled(storage)
    with storage.transaction() as tx:
        assert tx.enrollments.find_active_by_device_id("DEV-1").id == first_id
        assert tx.enrollments.find_active_by_device_id("DEV-unknown") is None
        assert tx.enrollments.find_active_by_device_id("") is None
        tx.enrollments.deactivate_for_host(host_id)
        # Inactive enrollments are not found.
        assert tx.enrollments.find_active_by_device_id("DEV-1") is None
        second = tx.enrollments.add(new_enrollment(host_id, created_at=T0 + timedelta(days=1)))
    with storage.transaction() as tx:
        assert tx.enrollments.find_active_by_device_id("DEV-1") == second
        other = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2"))
        added = tx.enrollments.add(new_enrollment(other.id, device_id="DEV-2"))
        assert tx.enrollments.find_active_by_device_id("DEV-2") == added


def test_active_by_device_id_lists_every_claim_newest_first(storage: SQLStorage) -> None:
    _, first_id = enrolled(storage)
    with storage.transaction() as tx:
        other = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-1"))
        second = tx.enrollments.add(new_enrollment(other.id))  # a second PC claims DEV-1
        assert [e.id for e in tx.enrollments.active_by_device_id("DEV-1")] == [second.id, first_id]
        assert tx.enrollments.active_by_device_id("") == []
        tx.enrollments.deactivate_for_host(other.id)
        assert [e.id for e in tx.enrollments.active_by_device_id("DEV-1")] == [first_id]


# --- inventory -------------------------------------------------------------------------------

FULL_INVENTORY = Inventory(
    manufacturer="Contoso",
    model="Laptop 7",
    os_version="10.0.26100.2",
    serial="SN-123",
    device_name="DESKTOP-NEW",
    language="en-US",
    dm_version="1.3",
)


def test_record_inventory_writes_and_returns_the_host(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        assert tx.inventory.get_inventory(host.id) == Inventory(
            os_version=host.os_version, device_name=host.display_name
        )
    at = T0 + timedelta(hours=1)
    with storage.transaction() as tx:
        updated = tx.inventory.record_inventory(host.id, FULL_INVENTORY, at)
    assert (updated.serial, updated.display_name, updated.os_version) == (
        "SN-123",
        "DESKTOP-NEW",
        "10.0.26100.2",
    )
    assert updated.updated_at == at
    assert (updated.team_id, updated.mdm_status, updated.os_edition) == (
        None,
        host.mdm_status,
        host.os_edition,
    )
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id) == updated
        assert tx.inventory.get_inventory(host.id) == FULL_INVENTORY


def test_record_inventory_keeps_stored_values_for_none(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        tx.inventory.record_inventory(host.id, FULL_INVENTORY, T0)
    with storage.transaction() as tx:
        updated = tx.inventory.record_inventory(host.id, Inventory(model="Laptop 8", serial=""), T0)
        assert tx.inventory.get_inventory(host.id) == replace(FULL_INVENTORY, model="Laptop 8")
        assert tx.inventory.record_inventory(host.id, Inventory(), T0) == updated
    assert updated.serial == "SN-123" and updated.display_name == "DESKTOP-NEW"


def test_inventory_of_unknown_host_is_not_found(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        for call in (
            lambda: tx.inventory.record_inventory(424242, FULL_INVENTORY, T0),
            lambda: tx.inventory.get_inventory(424242),
            lambda: tx.inventory.set_mdm_status(424242, MDMStatus.ON, T0),
            lambda: tx.inventory.checked_in(424242, T0),
        ):
            with pytest.raises(NotFound):
                call()


def test_set_mdm_status_and_checked_in(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
    later, seen = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    with storage.transaction() as tx:
        tx.inventory.set_mdm_status(host.id, MDMStatus.ON, later)
        tx.inventory.checked_in(host.id, seen)
    with storage.transaction() as tx:
        got = tx.hosts.get(host.id)
    assert (got.mdm_status, got.updated_at, got.last_seen_at) == (MDMStatus.ON, later, seen)


# --- profiles --------------------------------------------------------------------------------


def test_profile_round_trip_and_list(storage: SQLStorage) -> None:
    team = make_team(storage, "Workstations")
    with storage.transaction() as tx:
        b = tx.profiles.create(team_id=None, name="B", syncml="<Replace/>", at=T0)
        a = tx.profiles.create(team_id=None, name="A", syncml="<Add/>", at=T0)
        t = tx.profiles.create(team_id=team, name="A", syncml="<Add/>", at=T0)
    assert (b.team_id, b.name, b.syncml, b.created_at, b.updated_at) == (None, "B", "<Replace/>", T0, T0)
    assert t.team_id == team
    with storage.transaction() as tx:
        assert tx.profiles.get(a.id) == a
        assert tx.profiles.get(a.id + 1000) is None
        assert tx.profiles.list() == [a, b]
        assert tx.profiles.list(team_id=None) == [a, b]
        assert tx.profiles.list(team_id=team) == [t]
        assert tx.profiles.list(team_id=team + 1000) == []
        assert sorted(p.id for p in tx.profiles.list(all_teams=True)) == sorted([a.id, b.id, t.id])


@pytest.mark.parametrize("in_team", [False, True], ids=["no_team", "team"])
def test_profile_names_are_unique_per_team(storage: SQLStorage, in_team: bool) -> None:
    team = make_team(storage, "Workstations")
    other = make_team(storage, "Kiosks")
    team_id = team if in_team else None
    with storage.transaction() as tx:
        tx.profiles.create(team_id=team_id, name="Firewall", syncml="<Add/>", at=T0)
    with storage.transaction() as tx:
        with pytest.raises(Conflict) as raised:
            tx.profiles.create(team_id=team_id, name="Firewall", syncml="<Other/>", at=T0)
        assert "Firewall" in raised.value.message
        assert ("Workstations" if in_team else "No team") in raised.value.message
        # The transaction goes on after the clash, and the same name is fine elsewhere.
        tx.profiles.create(team_id=other, name="Firewall", syncml="<Add/>", at=T0)
        tx.profiles.create(team_id=None if in_team else team, name="Firewall", syncml="<Add/>", at=T0)
    with storage.transaction() as tx:
        assert len(tx.profiles.list(all_teams=True)) == 3
        assert [p.syncml for p in tx.profiles.list(team_id=team_id)] == ["<Add/>"]


def test_profile_for_unknown_team_is_not_found(storage: SQLStorage) -> None:
    with pytest.raises(NotFound), storage.transaction() as tx:
        tx.profiles.create(team_id=424242, name="X", syncml="<Add/>", at=T0)


def test_profile_host_statuses_upsert_and_delete(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host()).id
        other = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2")).id
        p1 = tx.profiles.create(team_id=None, name="P1", syncml="<Add/>", at=T0).id
        p2 = tx.profiles.create(team_id=None, name="P2", syncml="<Add/>", at=T0).id
        tx.profiles.set_host_status(host, p2, ProfileStatus.PENDING, detail=None, command_uuid="c-1", at=T0)
        tx.profiles.set_host_status(host, p1, ProfileStatus.PENDING, detail=None, command_uuid=None, at=T0)
        tx.profiles.set_host_status(other, p1, ProfileStatus.VERIFIED, detail=None, command_uuid="c-2", at=T0)
    later = T0 + timedelta(minutes=3)
    with storage.transaction() as tx:
        tx.profiles.set_host_status(
            host, p2, ProfileStatus.FAILED, detail="./Vendor/X: 405", command_uuid="c-3", at=later
        )
    with storage.transaction() as tx:
        assert tx.profiles.host_statuses(host) == [
            HostProfile(host, p1, ProfileStatus.PENDING, None, None, T0),
            HostProfile(host, p2, ProfileStatus.FAILED, "./Vendor/X: 405", "c-3", later),
        ]
        assert [h.host_id for h in tx.profiles.hosts_with_profile(p1)] == [host, other]
        assert tx.profiles.hosts_with_profile(p1)[1].status is ProfileStatus.VERIFIED
        assert tx.profiles.delete(p1) is True
        assert tx.profiles.delete(p1) is False
        assert tx.profiles.get(p1) is None
        assert [s.profile_id for s in tx.profiles.host_statuses(host)] == [p2]
        assert tx.profiles.hosts_with_profile(p1) == []
        assert tx.profiles.host_statuses(424242) == []
        # A host leaving the profile's team forgets only its own status.
        tx.profiles.set_host_status(other, p2, ProfileStatus.VERIFIED, detail=None, command_uuid="c-4", at=T0)
        assert tx.profiles.clear_host_status(host, p2) is True
        assert tx.profiles.clear_host_status(host, p2) is False
        assert tx.profiles.host_statuses(host) == []
        assert [h.host_id for h in tx.profiles.hosts_with_profile(p2)] == [other]


@pytest.mark.parametrize("trust_from", [1, sql_rows.TRUST_FROM], ids=["ids-trusted", "ids-checked"])
def test_profile_host_statuses_for_a_list_of_hosts(
    storage: SQLStorage, monkeypatch: pytest.MonkeyPatch, trust_from: int
) -> None:
    """Ids repeated or out of order count once; a host deleted meanwhile is skipped and the
    transaction goes on; a profile that does not exist is refused. Both ways of
    for_listed_hosts: the ids trusted to the foreign key, or joined with hosts."""
    monkeypatch.setattr(sql_rows, "TRUST_FROM", trust_from)
    with storage.transaction() as tx:
        ids = [
            tx.hosts.create(new_host(uuid=f"u-{n}", hw_dev_id=f"HW-{n}", device_id=f"DEV-{n}")).id
            for n in range(3)
        ]
        profile = tx.profiles.create(team_id=None, name="P1", syncml="<Add/>", at=T0).id
        tx.profiles.set_host_statuses(
            [ids[2], ids[0], ids[2]], profile, ProfileStatus.PENDING, detail=None, command_uuid="c-1", at=T0
        )
        assert [h.host_id for h in tx.profiles.hosts_with_profile(profile)] == [ids[0], ids[2]]
        tx.hosts.delete(ids[1])
        tx.profiles.set_host_statuses(
            ids, profile, ProfileStatus.VERIFIED, detail=None, command_uuid="c-2", at=T0
        )
        statuses = tx.profiles.hosts_with_profile(profile)
        assert [(h.host_id, h.status, h.command_uuid) for h in statuses] == [
            (ids[0], ProfileStatus.VERIFIED, "c-2"),
            (ids[2], ProfileStatus.VERIFIED, "c-2"),
        ]
    with pytest.raises(sa.exc.IntegrityError), storage.transaction() as tx:
        tx.profiles.set_host_statuses(
            [ids[0]], 424242, ProfileStatus.PENDING, detail=None, command_uuid="c-3", at=T0
        )


# --- agent -----------------------------------------------------------------------------------

PACKAGE = AgentPackage(
    product_code="{11111111-2222-3333-4444-555555555555}",
    version="1.2.3",
    sha256="ab" * 32,
    install_args="/quiet",
    url=None,
    content=b"MZ\x00\x01\xff" * 10,
    updated_at=T0,
)


def test_agent_package_is_one_row_replaced(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        assert tx.agent.get_package() is None
        tx.agent.set_package(PACKAGE)
    with storage.transaction() as tx:
        got = tx.agent.get_package()
    assert got == PACKAGE and isinstance(got.content, bytes)
    newer = replace(PACKAGE, version="2.0", url="https://cdn.example/agent.msi", content=None)
    with storage.transaction() as tx:
        tx.agent.set_package(newer)
    with storage.transaction() as tx:
        assert tx.agent.get_package() == newer
        assert tx.connection.execute(sa.text("SELECT COUNT(*) FROM agent_package")).scalar_one() == 1


def test_agent_host_status_upsert(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host()).id
        assert tx.agent.host_status(host) is None
        tx.agent.set_host_status(host, AgentStatus.INSTALLING, last_error=None, command_uuid="c-1", at=T0)
        assert tx.agent.host_status(host) == HostAgent(host, AgentStatus.INSTALLING, None, "c-1", T0)
    later = T0 + timedelta(minutes=1)
    with storage.transaction() as tx:
        tx.agent.set_host_status(host, AgentStatus.FAILED, last_error="1603", command_uuid=None, at=later)
    with storage.transaction() as tx:
        assert tx.agent.host_status(host) == HostAgent(host, AgentStatus.FAILED, "1603", None, later)


# --- activities ------------------------------------------------------------------------------


def test_activities_newest_first_and_by_host(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host()).id
        other = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2")).id
        first = tx.activities.add(
            "mdm_enrolled", at=T0, host_id=host, details={"kind": "manual", "n": [1, 2]}
        )
        tx.activities.add("team_created", at=T0, actor="admin@corp")
        tx.activities.add("mdm_enrolled", at=T0, host_id=other)
        last = tx.activities.add("profile_failed", at=T0 + timedelta(minutes=1), host_id=host)
    assert (first.type, first.actor, first.host_id, first.created_at) == ("mdm_enrolled", None, host, T0)
    assert first.details == {"kind": "manual", "n": [1, 2]} and last.details == {}
    with storage.transaction() as tx:
        assert [a.type for a in tx.activities.list()] == [
            "profile_failed",
            "mdm_enrolled",
            "team_created",
            "mdm_enrolled",
        ]
        assert tx.activities.list(host_id=host) == [last, first]
        assert tx.activities.list(limit=2)[0] == last and len(tx.activities.list(limit=2)) == 2
        assert tx.activities.list(host_id=424242) == []


def test_activities_outlive_their_host(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host()).id
        added = tx.activities.add("mdm_unenrolled", at=T0, host_id=host)
        tx.connection.execute(sa.text("DELETE FROM hosts WHERE id = :id"), {"id": host})
    with storage.transaction() as tx:
        assert tx.activities.list() == [replace(added, host_id=None)]
