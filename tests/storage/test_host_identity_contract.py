"""The storage contract for a host's identity: teams, serial numbers, and merging two records
of the same device. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.storage.test_commands_contract import session
from tests.storage.test_contract import T0, certificate, new_enrollment, new_host
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import AgentStatus, CommandKind, CommandState, ProfileStatus
from winmdm.domain.models import Host, MDMStatus
from winmdm.errors import Conflict, NotFound
from winmdm.storage.schema import activities, device_certificates, enrollments, hosts
from winmdm.storage.sql import SQLStorage

T1 = T0 + timedelta(days=30)
T2 = T0 + timedelta(days=31)


# --- set_team --------------------------------------------------------------------------------


def test_set_team_and_back_to_no_team(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        host = tx.hosts.create(new_host())
        assert tx.hosts.set_team(host.id, team.id) is None
        assert tx.hosts.get(host.id).team_id == team.id
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id) == replace(host, team_id=team.id)
        tx.hosts.set_team(host.id, None)
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id).team_id is None
        assert tx.hosts.list_ids(team_id=None, mdm_statuses=[MDMStatus.PENDING]) == [host.id]


def test_set_team_of_unknown_host_or_team_is_not_found(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        host = tx.hosts.create(new_host())
        with pytest.raises(NotFound, match="team 999"):
            tx.hosts.set_team(host.id, 999)
        with pytest.raises(NotFound, match="host 999"):
            tx.hosts.set_team(999, team.id)
        with pytest.raises(NotFound, match="host 999"):
            tx.hosts.set_team(999, None)
        # No failed statement: the transaction is still usable on PostgreSQL too.
        tx.hosts.set_team(host.id, team.id)
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id).team_id == team.id


# --- find_by_serial --------------------------------------------------------------------------


def test_find_by_serial_oldest_first(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        first = tx.hosts.create(new_host(uuid="u-1", serial="PF3ABCDE"))
        tx.hosts.create(new_host(uuid="u-2", serial="PF3ABCDE"))
        other = tx.hosts.create(new_host(uuid="u-3", serial="5CG1234XYZ"))
    with storage.transaction() as tx:
        assert tx.hosts.find_by_serial("PF3ABCDE") == first
        assert tx.hosts.find_by_serial("5CG1234XYZ") == other
        assert tx.hosts.find_by_serial("NOPE") is None


@pytest.mark.parametrize("fake", ["To be filled by O.E.M.", "Default string", "0", "None", "INVALID"])
def test_find_by_serial_ignores_placeholder_serials(storage: SQLStorage, fake: str) -> None:
    with storage.transaction() as tx:
        tx.hosts.create(new_host(uuid="u-1", serial=fake))
        tx.hosts.create(new_host(uuid="u-2", serial=fake.upper()))
    with storage.transaction() as tx:
        assert tx.hosts.find_by_serial(fake) is None
        assert tx.hosts.find_by_serial(fake.upper()) is None


def test_find_by_serial_of_nothing_is_none(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        tx.hosts.create(new_host(serial=None))
        # An empty serial is stored as NULL, and neither may ever match.
        tx.hosts.create(new_host(uuid="u-2", serial=""))
    with storage.transaction() as tx:
        assert tx.hosts.find_by_serial(None) is None
        assert tx.hosts.find_by_serial("") is None
        assert tx.hosts.find_by_serial("  ") is None


# --- merge_into ------------------------------------------------------------------------------


def _two_records_of_one_device(storage: SQLStorage) -> dict[str, object]:
    """The target: the device's old record, in a team. The source: the record made when it
    enrolled again (a reinstall changed its hardware id), which has everything current."""
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        target = tx.hosts.create(
            new_host(
                uuid="u-old", hw_dev_id="HW-OLD", device_id="DEV-OLD", serial="PF3ABCDE", team_id=team.id
            )
        )
        tx.hosts.record_enrollment(
            target.id,
            display_name="DESKTOP-OLD",
            hw_dev_id=None,
            device_id=None,
            os_version=None,
            os_edition=None,
            idp_username=None,
            mdm_status=MDMStatus.OFF,
            at=T0,
            enrollment_kind=EnrollmentKind.AUTOMATIC,
        )
        old = tx.enrollments.add(new_enrollment(target.id, device_id="DEV-OLD", hw_dev_id="HW-OLD"))
        tx.enrollments.deactivate_for_host(target.id)
        tx.certificates.add(certificate(target.id, old.id, "0a"))

        source = tx.hosts.create(
            new_host(
                uuid="u-new",
                display_name="DESKTOP-NEW",
                hw_dev_id="HW-NEW",
                device_id="DEV-NEW",
                os_version="10.0.26100.1",
                idp_username=None,
                created_at=T1,
                enrollment_kind=EnrollmentKind.MANUAL,
            )
        )
        new = tx.enrollments.add(
            new_enrollment(source.id, device_id="DEV-NEW", hw_dev_id="HW-NEW", created_at=T1)
        )
        tx.certificates.add(certificate(source.id, new.id, "0b", not_before=T1))
        tx.inventory.checked_in(source.id, T1)

        commands = {}
        for uuid, host_ids in (
            ("shared", [target.id, source.id]),
            ("old-only", [target.id]),
            ("new-only", [source.id]),
        ):
            commands[uuid] = tx.commands.create(CommandKind.RAW, f"<Get>{uuid}</Get>", at=T0, uuid=uuid).id
            tx.commands.enqueue(commands[uuid], host_ids, T0)
        tx.commands.mark_sent(
            source.id, commands["shared"], session_key="s-new", msg_id=2, cmd_ids=(3,), at=T1
        )

        tx.sessions.save(session(old.id, key="s-old"))
        tx.sessions.save(session(new.id, key="s-new"))

        profile_ids = [
            tx.profiles.create(team_id=None, name=f"P{n}", syncml="<Replace/>", at=T0).id for n in range(3)
        ]
        both, old_only, new_only = profile_ids
        for host_id, profile_id, status in (
            (target.id, both, ProfileStatus.VERIFIED),
            (target.id, old_only, ProfileStatus.VERIFIED),
            (source.id, both, ProfileStatus.PENDING),
            (source.id, new_only, ProfileStatus.PENDING),
        ):
            tx.profiles.set_host_status(host_id, profile_id, status, detail=None, command_uuid=None, at=T0)
        tx.agent.set_host_status(target.id, AgentStatus.FAILED, last_error="old", command_uuid=None, at=T0)
        tx.agent.set_host_status(source.id, AgentStatus.INSTALLED, last_error=None, command_uuid=None, at=T1)
        tx.activities.add("enrolled", at=T0, host_id=target.id)
        tx.activities.add("enrolled", at=T1, host_id=source.id)
        other = tx.hosts.create(new_host(uuid="u-other", hw_dev_id="HW-X", device_id="DEV-X"))
        tx.activities.add("enrolled", at=T1, host_id=other.id)
        target, source = tx.hosts.get(target.id), tx.hosts.get(source.id)
    return {
        "target": target,
        "source": source,
        "other": other,
        "team": team.id,
        "old": old.id,
        "new": new.id,
        "commands": commands,
        "profiles": profile_ids,
    }


def test_merge_into_moves_everything_and_deletes_the_source(storage: SQLStorage) -> None:
    d = _two_records_of_one_device(storage)
    target, source, other = d["target"], d["source"], d["other"]
    assert isinstance(target, Host) and isinstance(source, Host) and isinstance(other, Host)
    with storage.transaction() as tx:
        assert tx.hosts.merge_into(source.id, target.id, T2) is None

    with storage.transaction() as tx:
        assert tx.hosts.get(source.id) is None
        merged = tx.hosts.get(target.id)
        # Who the host is stays the target's; what the device is now comes from the source.
        assert (merged.id, merged.uuid, merged.team_id, merged.created_at) == (
            target.id,
            "u-old",
            d["team"],
            T0,
        )
        assert (merged.hw_dev_id, merged.device_id, merged.display_name) == (
            "HW-NEW",
            "DEV-NEW",
            "DESKTOP-NEW",
        )
        assert (merged.os_version, merged.mdm_status, merged.last_seen_at) == (
            "10.0.26100.1",
            MDMStatus.PENDING,
            T1,
        )
        assert merged.enrollment_kind is EnrollmentKind.MANUAL
        assert merged.serial == "PF3ABCDE"  # the source knew none: the target's stays
        assert merged.idp_username == target.idp_username
        assert merged.updated_at == T2

        assert [e.id for e in tx.enrollments.list_for_host(target.id)] == [d["old"], d["new"]]
        assert tx.enrollments.active_for_host(target.id).id == d["new"]
        assert tx.enrollments.find_active_by_device_id("DEV-NEW").host_id == target.id
        assert [c.serial for c in tx.certificates.list_for_host(target.id)] == ["0a", "0b"]
        assert {c.host_id for c in tx.certificates.list_for_host(target.id)} == {target.id}
        assert tx.hosts.find_known(hw_dev_id="HW-NEW", device_id=None).id == target.id

        queue = {q.command.uuid: q for q in tx.commands.list_for_host(target.id)}
        assert set(queue) == {"shared", "old-only", "new-only"}
        assert queue["shared"].state is CommandState.PENDING  # the target's own delivery stayed

        # Sessions belong to enrollments: they went along with them, unchanged.
        assert tx.sessions.get(d["new"]) == session(d["new"], key="s-new")
        assert tx.sessions.get(d["old"]) == session(d["old"], key="s-old")

        both, old_only, new_only = d["profiles"]
        statuses = {p.profile_id: p.status for p in tx.profiles.host_statuses(target.id)}
        assert statuses == {
            both: ProfileStatus.PENDING,
            old_only: ProfileStatus.VERIFIED,
            new_only: ProfileStatus.PENDING,
        }
        agent = tx.agent.host_status(target.id)
        assert (agent.host_id, agent.status, agent.updated_at) == (target.id, AgentStatus.INSTALLED, T1)

        assert [a.created_at for a in tx.activities.list(host_id=target.id)] == [T1, T0]
        assert [a.host_id for a in tx.activities.list(host_id=other.id)] == [other.id]

        # Nothing of the source is left anywhere.
        for table in (enrollments, device_certificates, activities):
            count = sa.select(sa.func.count()).select_from(table).where(table.c.host_id == source.id)
            assert tx.connection.execute(count).scalar_one() == 0
        assert tx.commands.list_for_host(source.id) == []
        assert tx.profiles.host_statuses(source.id) == []
        assert tx.agent.host_status(source.id) is None
        assert tx.connection.execute(sa.select(sa.func.count()).select_from(hosts)).scalar_one() == 2


def test_merge_into_a_bare_host(storage: SQLStorage) -> None:
    """A target with no rows of its own simply gets the source's."""
    d = _two_records_of_one_device(storage)
    source = d["source"]
    with storage.transaction() as tx:
        bare = tx.hosts.create(new_host(uuid="u-bare", hw_dev_id=None, device_id=None, serial="SN-B"))
        tx.hosts.merge_into(source.id, bare.id, T2)
    with storage.transaction() as tx:
        assert tx.enrollments.active_for_host(bare.id).id == d["new"]
        assert tx.sessions.get(d["new"]).key == "s-new"
        assert {q.command.uuid for q in tx.commands.list_for_host(bare.id)} == {"shared", "new-only"}
        assert tx.agent.host_status(bare.id).status is AgentStatus.INSTALLED
        assert tx.hosts.get(bare.id).serial == "SN-B"


def test_merge_into_missing_or_same_host(storage: SQLStorage) -> None:
    d = _two_records_of_one_device(storage)
    target, source = d["target"], d["source"]
    with pytest.raises(NotFound, match="host 999"), storage.transaction() as tx:
        tx.hosts.merge_into(999, target.id, T2)
    with pytest.raises(NotFound, match="host 999"), storage.transaction() as tx:
        tx.hosts.merge_into(source.id, 999, T2)
    with pytest.raises(Conflict), storage.transaction() as tx:
        tx.hosts.merge_into(source.id, source.id, T2)
    with storage.transaction() as tx:
        assert tx.hosts.get(source.id) == source
        assert tx.hosts.get(target.id) == target
        assert len(tx.enrollments.list_for_host(source.id)) == 1


def test_merge_into_rolls_back_with_its_transaction(storage: SQLStorage) -> None:
    d = _two_records_of_one_device(storage)
    target, source = d["target"], d["source"]
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.hosts.merge_into(source.id, target.id, T2)
        raise RuntimeError("the service failed afterwards")
    with storage.transaction() as tx:
        assert tx.hosts.get(source.id) == source
        assert [c.serial for c in tx.certificates.list_for_host(source.id)] == ["0b"]
        assert tx.enrollments.get(d["new"]).host_id == source.id
        assert tx.sessions.get(d["old"]).key == "s-old"
