"""A command or a profile status for more hosts than a statement can take parameters (PostgreSQL's
protocol stops at 65,535, SQLite at 32,766): the ids go in one parameter, on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from tests.storage.test_contract import T0
from winmdm.domain.management import CommandKind, CommandState, ProfileStatus
from winmdm.domain.models import MDMStatus
from winmdm.storage.schema import host_commands, host_profiles, hosts
from winmdm.storage.sql import SQLStorage

MANY = 70_000  # over both limits


def make_hosts(storage: SQLStorage, count: int) -> list[int]:
    """`count` hosts made by the database itself (one statement, no parameter per host)."""
    with storage.transaction() as tx:
        conn = tx.connection
        if conn.dialect.name == "postgresql":
            numbers = sa.select(sa.func.generate_series(1, count).label("n")).subquery()
        else:
            numbers = (
                sa.text(
                    f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) SELECT n FROM s"
                )
                .columns(sa.column("n", sa.Integer))
                .subquery("numbers")
            )
        n = numbers.c.n
        rows = sa.select(
            sa.literal("uuid-") + sa.cast(n, sa.Text),
            sa.literal("DESKTOP-") + sa.cast(n, sa.Text),
            sa.literal(MDMStatus.ON, hosts.c.mdm_status.type),
            sa.literal(T0, hosts.c.created_at.type),
            sa.literal(T0, hosts.c.updated_at.type),
        ).select_from(numbers)
        conn.execute(
            hosts.insert().from_select(
                ["uuid", "display_name", "mdm_status", "created_at", "updated_at"], rows
            )
        )
        return list(conn.execute(sa.select(hosts.c.id).order_by(hosts.c.id)).scalars())


def test_a_command_is_queued_for_seventy_thousand_hosts_in_one_call(storage: SQLStorage) -> None:
    ids = make_hosts(storage, MANY)
    missing = max(ids) + 1000
    with storage.transaction() as tx:
        command = tx.commands.create(CommandKind.REBOOT, "<Exec/>", at=T0, uuid="c-many")
        # Hosts that do not exist are skipped and not counted.
        assert tx.commands.enqueue(command.id, [*ids, missing], T0) == MANY
        # A second time: every host has it already.
        assert tx.commands.enqueue(command.id, ids[:10], T0) == 0
    with storage.transaction() as tx:
        states = tx.connection.execute(
            sa.select(host_commands.c.state, sa.func.count()).group_by(host_commands.c.state)
        ).all()
        assert states == [(CommandState.PENDING, MANY)]
        assert [q.command.uuid for q in tx.commands.next_for_host(ids[-1], "s")] == ["c-many"]


def test_a_profile_status_is_set_for_seventy_thousand_hosts_in_one_call(storage: SQLStorage) -> None:
    ids = make_hosts(storage, MANY)
    with storage.transaction() as tx:
        profile = tx.profiles.create(team_id=None, name="Wi-Fi", syncml="<Replace/>", at=T0)
        tx.profiles.set_host_status(
            ids[0], profile.id, ProfileStatus.VERIFIED, detail=None, command_uuid="c-0", at=T0
        )
        tx.profiles.set_host_statuses(
            [*ids, max(ids) + 1],
            profile.id,
            ProfileStatus.PENDING,
            detail="queued",
            command_uuid="c-1",
            at=T0,
        )
    with storage.transaction() as tx:
        counts = tx.connection.execute(
            sa.select(host_profiles.c.status, host_profiles.c.command_uuid, sa.func.count()).group_by(
                host_profiles.c.status, host_profiles.c.command_uuid
            )
        ).all()
        # The status the first host had is replaced, like set_host_status does.
        assert counts == [(ProfileStatus.PENDING, "c-1", MANY)]
        first = tx.profiles.host_statuses(ids[0])[0]
        assert (first.status, first.detail, first.command_uuid) == (ProfileStatus.PENDING, "queued", "c-1")
