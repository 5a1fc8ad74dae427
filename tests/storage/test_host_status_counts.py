"""host_status_counts (revision 0007) follows every change of hosts the stores make, on SQLite and
PostgreSQL: whatever happens to hosts, its sums equal counting the hosts themselves."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from tests.storage.test_contract import T0
from tests.storage.test_fleet_contract import AUTOMATIC, MANUAL, add_host
from winmdm.domain.fleet import HostFilter, HostMDMStatus, TeamScope
from winmdm.domain.models import MDMStatus
from winmdm.storage.schema import host_status_counts, hosts
from winmdm.storage.sql import SQLStorage
from winmdm.storage.sql_fleet import fold_counts

TRIGGERS = {"host_status_counts_insert", "host_status_counts_delete", "host_status_counts_update"}


def kept(storage: SQLStorage) -> Counter:
    with storage.transaction() as tx:
        return Counter(
            {
                (c.team_id, c.mdm_status, c.enrollment_kind): c.count
                for c in tx.hosts.status_counts(TeamScope.ALL)
            }
        )


def counted(storage: SQLStorage) -> Counter:
    """What the hosts table says, counted the slow way."""
    grouped = (hosts.c.team_id, hosts.c.mdm_status, hosts.c.enrollment_kind)
    with storage.transaction() as tx:
        rows = tx.connection.execute(sa.select(*grouped, sa.func.count()).group_by(*grouped)).all()
    return Counter({(team, status, kind): n for team, status, kind, n in rows})


def rows(storage: SQLStorage) -> int:
    with storage.transaction() as tx:
        return tx.connection.execute(sa.select(sa.func.count()).select_from(host_status_counts)).scalar_one()


def test_the_triggers_are_there_at_head(storage: SQLStorage) -> None:
    """A later revision rebuilding hosts on SQLite would drop them silently; this catches it.
    (host_ids_insert is revision 0009's: it keeps host_ids, tests/storage/test_migration_0009.py.)"""
    with storage.transaction() as tx:
        if tx.connection.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'hosts'"
        else:
            query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'hosts'::regclass AND NOT tgisinternal"
        assert set(tx.connection.exec_driver_sql(query).scalars()) == TRIGGERS | {"host_ids_insert"}


def test_counts_follow_every_change_of_hosts(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        finance = tx.teams.create("Finance", at=T0).id
        sales = tx.teams.create("Sales", at=T0).id
        one = add_host(tx, 1, team_id=finance, mdm_status=MDMStatus.PENDING, enrollment_kind=MANUAL).id
        two = add_host(tx, 2, team_id=sales, mdm_status=MDMStatus.ON, enrollment_kind=AUTOMATIC).id
        three = add_host(tx, 3, mdm_status=MDMStatus.ON, enrollment_kind=None).id
        add_host(tx, 4, team_id=finance, mdm_status=MDMStatus.OFF, enrollment_kind=MANUAL)
    assert kept(storage) == counted(storage) and sum(kept(storage).values()) == 4

    steps = [
        lambda tx: tx.inventory.set_mdm_status(one, MDMStatus.ON, T0),  # the first session ends
        lambda tx: tx.hosts.record_enrollment(  # enrolled again, now automatic
            three,
            display_name="DESKTOP-3",
            hw_dev_id=None,
            device_id=None,
            os_version=None,
            os_edition=None,
            idp_username=None,
            mdm_status=MDMStatus.PENDING,
            at=T0,
            enrollment_kind=AUTOMATIC,
        ),
        lambda tx: tx.hosts.set_team(two, finance),
        lambda tx: tx.hosts.merge_into(three, two, T0),  # the same PC recorded twice
        lambda tx: tx.teams.delete(finance),  # its hosts go to No team (SET NULL)
        lambda tx: tx.hosts.delete(one),
    ]
    for step in steps:
        with storage.transaction() as tx:
            step(tx)
        assert kept(storage) == counted(storage)
    assert sum(kept(storage).values()) == 2


def test_a_check_in_adds_no_rows(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = add_host(tx, 1, mdm_status=MDMStatus.ON, enrollment_kind=MANUAL).id
    before = rows(storage)
    with storage.transaction() as tx:
        tx.inventory.checked_in(host, T0 + timedelta(hours=8))
        tx.inventory.set_mdm_status(host, MDMStatus.ON, T0)  # the same status again
    assert rows(storage) == before


def test_a_rolled_back_change_counts_nothing(storage: SQLStorage) -> None:
    try:
        with storage.transaction() as tx:
            add_host(tx, 1)
            raise RuntimeError("the enrollment failed")
    except RuntimeError:
        pass
    assert kept(storage) == Counter() and rows(storage) == 0


def test_folding_keeps_the_sums_and_leaves_a_row_per_group(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        ids = [add_host(tx, n, mdm_status=MDMStatus.PENDING, enrollment_kind=MANUAL).id for n in range(6)]
    for host_id in ids[:4]:
        with storage.transaction() as tx:
            tx.inventory.set_mdm_status(host_id, MDMStatus.ON, T0)
    with storage.transaction() as tx:
        tx.hosts.delete(ids[5])
    before = kept(storage)
    assert rows(storage) > 3
    with storage.transaction() as tx:
        assert fold_counts(tx.connection, above=100) is False  # few rows: left alone
        assert fold_counts(tx.connection, above=3) is True
    assert kept(storage) == before == counted(storage)
    assert rows(storage) == 2  # (No team, on, manual) 4 and (No team, pending, manual) 1


def test_the_hosts_list_total_comes_from_the_counts(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0).id
        for n in range(3):
            add_host(tx, n, team_id=team, mdm_status=MDMStatus.ON, enrollment_kind=MANUAL)
        add_host(tx, 9, mdm_status=MDMStatus.ON, enrollment_kind=None)
        # Counts only: a host the triggers never saw (as if inserted around them) is not in the
        # total, which shows where the total comes from.
        tx.connection.execute(host_status_counts.delete().where(host_status_counts.c.team_id.is_(None)))
    with storage.transaction() as tx:
        assert tx.hosts.search(HostFilter(mdm_status=HostMDMStatus.ON_MANUAL))[1] == 3
        assert tx.hosts.search(HostFilter(team=team))[1] == 3
        assert tx.hosts.search(HostFilter(mdm_status=HostMDMStatus.ON_AUTOMATIC))[1] == 0
        assert tx.hosts.search(HostFilter(query="DESKTOP"))[1] == 4  # a text search counts hosts
