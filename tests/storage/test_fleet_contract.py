"""The storage contract of the fleet views: host search and status counts, forgetting a host,
renaming and deleting teams, paging activities. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.storage.test_contract import T0, certificate, new_enrollment, new_host
from winmdm.domain.fleet import HostFilter, HostMDMStatus, StatusCount, TeamScope
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import AgentStatus, CommandKind, MDMSession, ProfileStatus
from winmdm.domain.models import MDMStatus
from winmdm.errors import Conflict, NotFound
from winmdm.protocol.syncml.session import SessionState
from winmdm.storage.schema import (
    commands,
    device_certificates,
    enrollments,
    host_agent,
    host_commands,
    host_profiles,
)
from winmdm.storage.sql import SQLStorage

MANUAL, AUTOMATIC = EnrollmentKind.MANUAL, EnrollmentKind.AUTOMATIC


def add_host(tx, n: int, **changes):
    values = {
        "uuid": f"uuid-{n}",
        "display_name": f"DESKTOP-{n}",
        "hw_dev_id": f"HW-{n}",
        "device_id": f"DEV-{n}",
        "serial": f"SN-{n}",
        "idp_username": f"user{n}@corp.example",
    }
    return tx.hosts.create(new_host(**(values | changes)))


@pytest.fixture
def fleet(storage: SQLStorage) -> dict[str, int]:
    """Six hosts over two teams and No team, one of each status (and On with no kind decided)."""
    with storage.transaction() as tx:
        finance = tx.teams.create("Finance", at=T0).id
        sales = tx.teams.create("Sales", at=T0).id
        ids = {
            "manual": add_host(tx, 1, team_id=finance, mdm_status=MDMStatus.ON, enrollment_kind=MANUAL).id,
            "automatic": add_host(
                tx, 2, team_id=finance, mdm_status=MDMStatus.ON, enrollment_kind=AUTOMATIC
            ).id,
            "undecided": add_host(tx, 3, mdm_status=MDMStatus.ON, enrollment_kind=None).id,
            "pending": add_host(
                tx, 4, team_id=sales, mdm_status=MDMStatus.PENDING, enrollment_kind=MANUAL
            ).id,
            "off": add_host(tx, 5, mdm_status=MDMStatus.OFF, enrollment_kind=MANUAL).id,
            "odd": add_host(
                tx,
                6,
                display_name="Lab_PC 100%",
                serial=None,
                idp_username="Ünïcode.Person@Corp.Example",
                hw_dev_id=None,
                device_id="AbCdEf-6",
            ).id,
        }
    return ids | {"finance": finance, "sales": sales}


def search(storage: SQLStorage, **filter_args):
    with storage.transaction() as tx:
        rows, total = tx.hosts.search(HostFilter(**filter_args))
    return [row.id for row in rows], total


# --- search ----------------------------------------------------------------------------------


def test_search_lists_every_host_by_id_with_team_names(storage: SQLStorage, fleet) -> None:
    with storage.transaction() as tx:
        rows, total = tx.hosts.search(HostFilter())
    assert total == 6 and [r.id for r in rows] == sorted(r.id for r in rows)
    first = rows[0]
    assert first.id == fleet["manual"] and first.team_id == fleet["finance"] and first.team_name == "Finance"
    assert (first.display_name, first.serial, first.idp_username) == (
        "DESKTOP-1",
        "SN-1",
        "user1@corp.example",
    )
    assert (first.os_version, first.os_edition, first.created_at, first.last_seen_at) == (
        "10.0.22631.4460",
        "Enterprise",
        T0,
        None,
    )
    no_team = next(r for r in rows if r.id == fleet["undecided"])
    assert no_team.team_id is None and no_team.team_name is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (HostMDMStatus.ON_MANUAL, ["manual"]),
        (HostMDMStatus.ON_AUTOMATIC, ["automatic", "undecided"]),
        (HostMDMStatus.PENDING, ["pending", "odd"]),
        (HostMDMStatus.OFF, ["off"]),
    ],
)
def test_search_by_mdm_status_follows_the_rule(storage: SQLStorage, fleet, status, expected) -> None:
    ids, total = search(storage, mdm_status=status)
    assert ids == [fleet[name] for name in expected] and total == len(expected)
    with storage.transaction() as tx:
        rows, _ = tx.hosts.search(HostFilter(mdm_status=status))
    assert {row.mdm_status for row in rows} == {status}


def test_search_by_team(storage: SQLStorage, fleet) -> None:
    assert search(storage, team=fleet["finance"]) == ([fleet["manual"], fleet["automatic"]], 2)
    assert search(storage, team=TeamScope.NO_TEAM) == ([fleet["undecided"], fleet["off"], fleet["odd"]], 3)
    assert search(storage, team=fleet["sales"], mdm_status=HostMDMStatus.OFF) == ([], 0)
    assert search(storage, team=424242) == ([], 0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("desktop-2", ["automatic"]),  # display name, any case
        ("sn-5", ["off"]),  # serial
        ("USER4@", ["pending"]),  # IdP username
        ("hw-3", ["undecided"]),  # hardware id
        ("abcdef", ["odd"]),  # MDM device id
        ("100%", ["odd"]),  # % is a character, not a wildcard
        ("_pc", ["odd"]),  # so is _
        ("%", ["odd"]),
        ("corp.example", ["manual", "automatic", "undecided", "pending", "off", "odd"]),
        ("nobody", []),
    ],
)
def test_search_query_is_a_case_insensitive_substring(storage: SQLStorage, fleet, query, expected) -> None:
    assert search(storage, query=query) == ([fleet[name] for name in expected], len(expected))


def test_search_pages_and_counts_every_match(storage: SQLStorage, fleet) -> None:
    everyone = search(storage)[0]
    assert search(storage, per_page=4) == (everyone[:4], 6)
    assert search(storage, per_page=4, page=2) == (everyone[4:], 6)
    assert search(storage, per_page=4, page=3) == ([], 6)
    assert search(storage, per_page=1, page=2, team=fleet["finance"]) == ([fleet["automatic"]], 2)


def test_search_without_hosts(storage: SQLStorage) -> None:
    assert search(storage) == ([], 0)


# --- status counts ---------------------------------------------------------------------------


def test_status_counts_group_by_team_status_and_kind(storage: SQLStorage, fleet) -> None:
    with storage.transaction() as tx:
        add_host(tx, 7, team_id=fleet["finance"], mdm_status=MDMStatus.ON, enrollment_kind=MANUAL)
        everything = tx.hosts.status_counts(TeamScope.ALL)
        no_team = tx.hosts.status_counts(TeamScope.NO_TEAM)
        finance = tx.hosts.status_counts(fleet["finance"])
    f, s = fleet["finance"], fleet["sales"]

    def key(count: StatusCount):
        return (count.team_id or 0, count.mdm_status.value, (count.enrollment_kind or "").__str__())

    assert sorted(finance, key=key) == [
        StatusCount(f, MDMStatus.ON, AUTOMATIC, 1),
        StatusCount(f, MDMStatus.ON, MANUAL, 2),
    ]
    assert sorted(no_team, key=key) == [
        StatusCount(None, MDMStatus.OFF, MANUAL, 1),
        StatusCount(None, MDMStatus.ON, None, 1),
        StatusCount(None, MDMStatus.PENDING, None, 1),
    ]
    assert sorted(everything, key=key) == sorted(
        [*finance, *no_team, StatusCount(s, MDMStatus.PENDING, MANUAL, 1)], key=key
    )


# --- deleting a host -------------------------------------------------------------------------


def _owned_rows(tx, host_id: int) -> dict[str, int]:
    counts = {}
    for table in (enrollments, device_certificates, host_commands, host_profiles, host_agent):
        query = sa.select(sa.func.count()).select_from(table).where(table.c.host_id == host_id)
        counts[table.name] = tx.connection.execute(query).scalar_one()
    return counts


def test_delete_host_takes_everything_that_is_its_own(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0).id
        host = tx.hosts.create(new_host(team_id=team)).id
        other = add_host(tx, 2).id
        enrollment = tx.enrollments.add(new_enrollment(host)).id
        other_enrollment = tx.enrollments.add(new_enrollment(other, device_id="DEV-2")).id
        tx.certificates.add(certificate(host, enrollment, "aa01"))
        tx.certificates.add(certificate(other, other_enrollment, "bb01"))
        command = tx.commands.create(CommandKind.REBOOT, "<Exec/>", at=T0, uuid="c-1")
        tx.commands.enqueue(command.id, [host, other], T0)
        tx.sessions.save(MDMSession(enrollment_id=enrollment, key="k", state=SessionState(session_id="1")))
        profile = tx.profiles.create(team_id=team, name="Wi-Fi", syncml="<Replace/>", at=T0)
        tx.profiles.set_host_status(
            host, profile.id, ProfileStatus.VERIFIED, detail=None, command_uuid=None, at=T0
        )
        tx.agent.set_host_status(host, AgentStatus.INSTALLED, last_error=None, command_uuid=None, at=T0)
        activity = tx.activities.add("mdm_enrolled", at=T0, host_id=host)
        assert all(_owned_rows(tx, host).values())
    with storage.transaction() as tx:
        assert tx.hosts.delete(host) is True
    with storage.transaction() as tx:
        assert tx.hosts.get(host) is None
        assert set(_owned_rows(tx, host).values()) == {0}
        assert tx.certificates.get("aa01") is None and tx.enrollments.get(enrollment) is None
        assert tx.sessions.get(enrollment) is None
        # What was not the host's own stays: the other host, the shared command, the profile.
        assert tx.hosts.get(other) is not None and tx.certificates.get("bb01") is not None
        assert tx.commands.get(other, "c-1") is not None
        assert tx.connection.execute(sa.select(sa.func.count()).select_from(commands)).scalar_one() == 1
        assert tx.profiles.get(profile.id) is not None
        assert tx.activities.list() == [replace(activity, host_id=None)]
        assert tx.hosts.delete(host) is False


# --- teams -----------------------------------------------------------------------------------


def test_rename_team(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        finance = tx.teams.create("Finance", at=T0, end_user_auth=True)
        tx.teams.create("Sales", at=T0)
        renamed = tx.teams.rename(finance.id, "Accounting")
    assert renamed == replace(finance, name="Accounting")
    with storage.transaction() as tx:
        assert tx.teams.get(finance.id) == renamed
        assert tx.teams.rename(finance.id, "accounting").name == "accounting"  # its own name, other case


def test_rename_to_a_taken_name_is_a_conflict_and_keeps_the_transaction(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        finance = tx.teams.create("Finance", at=T0)
        tx.teams.create("Sales", at=T0)
        with pytest.raises(Conflict, match='"Sales"'):
            tx.teams.rename(finance.id, "Sales")
        tx.teams.create("Marketing", at=T0)  # still usable (PostgreSQL would have aborted it)
    with storage.transaction() as tx:
        assert [t.name for t in tx.teams.list()] == ["Finance", "Marketing", "Sales"]


def test_rename_unknown_team_is_not_found(storage: SQLStorage) -> None:
    with pytest.raises(NotFound, match="team 999"), storage.transaction() as tx:
        tx.teams.rename(999, "Anything")


def test_delete_team_moves_hosts_to_no_team_and_removes_profiles_and_secrets(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        finance = tx.teams.create("Finance", at=T0).id
        sales = tx.teams.create("Sales", at=T0).id
        host = add_host(tx, 1, team_id=finance).id
        kept_host = add_host(tx, 2, team_id=sales).id
        profile = tx.profiles.create(team_id=finance, name="Wi-Fi", syncml="<Replace/>", at=T0).id
        kept_profile = tx.profiles.create(team_id=sales, name="Wi-Fi", syncml="<Replace/>", at=T0).id
        tx.profiles.set_host_status(
            host, profile, ProfileStatus.VERIFIED, detail=None, command_uuid=None, at=T0
        )
        tx.enrollment_secrets.create(finance, "a" * 64, at=T0)
        kept_secret = tx.enrollment_secrets.create(sales, "b" * 64, at=T0)
    with storage.transaction() as tx:
        assert tx.teams.delete(finance) is True
    with storage.transaction() as tx:
        assert tx.teams.get(finance) is None and [t.id for t in tx.teams.list()] == [sales]
        assert tx.hosts.get(host).team_id is None and tx.hosts.get(kept_host).team_id == sales
        assert tx.profiles.get(profile) is None and tx.profiles.get(kept_profile) is not None
        assert tx.profiles.host_statuses(host) == []
        assert tx.enrollment_secrets.find_active("a" * 64) is None
        assert tx.enrollment_secrets.list(sales) == [kept_secret]
        assert tx.teams.delete(finance) is False


# --- activities ------------------------------------------------------------------------------


def test_activities_page_with_offset_and_count(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host()).id
        added = [
            tx.activities.add(f"a{n}", at=T0 + timedelta(seconds=n), host_id=host if n % 2 else None)
            for n in range(7)
        ]
    newest_first = list(reversed(added))
    with storage.transaction() as tx:
        assert tx.activities.count() == 7 and tx.activities.count(host_id=host) == 3
        assert tx.activities.count(host_id=424242) == 0
        assert tx.activities.list(limit=3) == newest_first[:3]
        assert tx.activities.list(limit=3, offset=3) == newest_first[3:6]
        assert tx.activities.list(limit=3, offset=6) == newest_first[6:]
        assert tx.activities.list(limit=3, offset=9) == []
        mine = [a for a in newest_first if a.host_id == host]
        assert tx.activities.list(host_id=host, limit=2, offset=1) == mine[1:3]
