"""Revision 0009_host_ids, up and down, on SQLite and PostgreSQL: host_ids mirrors hosts (filled,
then kept by the trigger), the fan-out tables' host keys move to it and back with every row
kept, and deleting a host still takes its queued commands and profile statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import commands, host_commands, host_profiles, hosts, profiles

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FAN_OUT = ("host_commands", "host_profiles")


def _host(n: int) -> dict:
    return {
        "uuid": f"u-{n}",
        "display_name": f"DESKTOP-{n}",
        "mdm_status": "on",
        "created_at": T0,
        "updated_at": T0,
    }


def _add_host(conn: sa.Connection, n: int) -> int:
    return conn.execute(hosts.insert().values(_host(n)).returning(hosts.c.id)).scalar_one()


def _queue(conn: sa.Connection, host_id: int, command_id: int, profile_id: int) -> None:
    conn.execute(
        host_commands.insert().values(
            host_id=host_id,
            command_id=command_id,
            state="pending",
            cmd_ids=[],
            replies=[],
            attempts=0,
            queued_at=T0,
        )
    )
    conn.execute(
        host_profiles.insert().values(host_id=host_id, profile_id=profile_id, status="pending", updated_at=T0)
    )


def _rows(engine: sa.Engine) -> tuple[list, list]:
    with engine.connect() as conn:
        queued = conn.execute(sa.select(host_commands).order_by(host_commands.c.host_id)).all()
        statuses = conn.execute(sa.select(host_profiles).order_by(host_profiles.c.host_id)).all()
    return queued, statuses


def _host_ids(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT id FROM host_ids").scalars())


def _targets(engine: sa.Engine) -> dict[str, str]:
    """The table each fan-out table's host_id refers to."""
    inspector = sa.inspect(engine)
    return {
        table: next(
            fk["referred_table"]
            for fk in inspector.get_foreign_keys(table)
            if fk["constrained_columns"] == ["host_id"]
        )
        for table in FAN_OUT
    }


def test_the_host_keys_move_to_host_ids_and_back_with_every_row(engine: sa.Engine) -> None:
    migrate(engine, "0008_osquery_agent")
    with engine.begin() as conn:
        first, second = _add_host(conn, 1), _add_host(conn, 2)
        command = conn.execute(
            commands.insert()
            .values(uuid="c-1", kind="raw", payload="<Get/>", context={}, created_at=T0)
            .returning(commands.c.id)
        ).scalar_one()
        profile = conn.execute(
            profiles.insert()
            .values(team_id=None, team_key=0, name="P", syncml="<Replace/>", created_at=T0, updated_at=T0)
            .returning(profiles.c.id)
        ).scalar_one()
        _queue(conn, first, command, profile)
        _queue(conn, second, command, profile)
    before = _rows(engine)
    assert _targets(engine) == {"host_commands": "hosts", "host_profiles": "hosts"}

    migrate(engine, "0009_host_ids")
    assert current_revision(engine) == "0009_host_ids"
    assert _targets(engine) == {"host_commands": "host_ids", "host_profiles": "host_ids"}
    assert _host_ids(engine) == {first, second}
    assert _rows(engine) == before
    with engine.begin() as conn:  # several hosts in one statement: each gets its id row
        conn.execute(hosts.insert(), [_host(3), _host(4)])
        added = set(conn.execute(sa.select(hosts.c.id).where(hosts.c.uuid.in_(["u-3", "u-4"]))).scalars())
    assert _host_ids(engine) == {first, second} | added
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # still a foreign key
        _queue(conn, max(added) + 100, command, profile)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the rebuilt CHECKs hold
        conn.execute(
            sa.text(
                "INSERT INTO host_commands (host_id, command_id, state, cmd_ids, replies, attempts, "
                "queued_at) VALUES (:host, :command, 'lost', '[]', '[]', 0, :at)"
            ),
            {"host": max(added), "command": command, "at": T0},
        )
    with SQLStorage(engine).transaction() as tx:  # a deleted host's rows go, through host_ids
        assert tx.hosts.delete(first)
    assert first not in _host_ids(engine)
    queued, statuses = _rows(engine)
    assert [row.host_id for row in queued] == [row.host_id for row in statuses] == [second]
    names = {index["name"] for table in FAN_OUT for index in sa.inspect(engine).get_indexes(table)}
    assert {
        "ix_host_commands_host_id_state",
        "ix_host_commands_command_id",
        "ix_host_profiles_profile_id",
    } <= names

    downgrade(engine, "0008_osquery_agent")
    assert "host_ids" not in sa.inspect(engine).get_table_names()
    assert _targets(engine) == {"host_commands": "hosts", "host_profiles": "hosts"}
    assert _rows(engine) == (queued, statuses)
    with engine.begin() as conn:  # no trigger left behind to write to a table that is gone
        _add_host(conn, 5)
    with SQLStorage(engine).transaction() as tx:
        assert tx.hosts.delete(second)
    assert _rows(engine) == ([], [])
    migrate(engine)
    assert _host_ids(engine) == added | {_only_host_id(engine, "u-5")}


def _only_host_id(engine: sa.Engine, uuid: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(hosts.c.id).where(hosts.c.uuid == uuid)).scalar_one()


def test_at_head_every_new_host_has_its_id_row(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        host_id = _add_host(conn, 1)
    assert _host_ids(engine) == {host_id}
