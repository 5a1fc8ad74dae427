"""The fan-out tables' foreign keys on a narrow table of host ids, not on hosts.

Revision ID: 0009_host_ids
Revises: 0008_osquery_agent
Create Date: 2026-12-06

Written out by hand with plain SQLAlchemy types, like 0001 to 0008. benchmarks/scale.py (README,
"Fan-out and checkpoints") found a profile for 100,000 of a million hosts spending its time on
the hosts table: every row added to host_commands and host_profiles has its foreign key checked
with `SELECT ... FOR KEY SHARE` on the referenced row, and on PostgreSQL that lock is written
into the row's page. With hosts ~750 MB, the fan-out read ~42,000 of its pages and, after each
checkpoint, wrote each of them whole to the WAL (341 of 420 MB). The same keys pointing at
host_ids, the ids alone (~56 MB at a million hosts), measured 3.0 s and 114 MB against 4.3 s
and 420 MB. So:

- host_ids holds one row per host, filled here and then by a trigger on every insert into
  hosts (PostgreSQL per statement, from the transition table; SQLite per row); its own foreign
  key to hosts cascades, so deleting a host deletes its id and, through it, its rows in
  host_commands and host_profiles, as before.
- host_commands.host_id and host_profiles.host_id reference host_ids.id (ON DELETE CASCADE).
  PostgreSQL alters the constraints in place; SQLite rebuilds both tables (batch "recreate"
  with `copy_from`, every constraint and index restated as 0008 left them; nothing refers to
  either table, so the rebuild cascades nowhere).

On PostgreSQL the new keys are validated against every existing row while the tables are locked:
7.8 s for a million hosts and 300,000 rows in each table (benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_host_ids"
down_revision: str | None = "0008_osquery_agent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_UP = [
    """CREATE FUNCTION host_ids_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO host_ids (id) SELECT id FROM added;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER host_ids_insert AFTER INSERT ON hosts REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION host_ids_inserted()",
]
POSTGRESQL_DOWN = ["DROP TRIGGER host_ids_insert ON hosts", "DROP FUNCTION host_ids_inserted()"]
SQLITE_UP = [
    "CREATE TRIGGER host_ids_insert AFTER INSERT ON hosts BEGIN "
    "INSERT INTO host_ids (id) VALUES (NEW.id); END"
]
SQLITE_DOWN = ["DROP TRIGGER host_ids_insert"]


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _host_key(table: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["host_id"], [f"{target}.id"], name=op.f(f"fk_{table}_host_id_{target}"), ondelete="CASCADE"
    )


def _host_commands(target: str) -> sa.Table:
    """host_commands as 0008 left it, its host key on `target`."""
    return sa.Table(
        "host_commands",
        sa.MetaData(),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("session_key", sa.Text(), nullable=True),
        sa.Column("msg_id", sa.Integer(), nullable=True),
        sa.Column("cmd_ids", sa.JSON(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("replies", sa.JSON(), nullable=False),
        sa.Column("raw_reply", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", _aware(), nullable=False),
        sa.Column("sent_at", _aware(), nullable=True),
        sa.Column("done_at", _aware(), nullable=True),
        sa.PrimaryKeyConstraint("host_id", "command_id", name=op.f("pk_host_commands")),
        sa.CheckConstraint("state IN ('pending', 'sent', 'done')", name=op.f("ck_host_commands_state")),
        _host_key("host_commands", target),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.id"],
            name=op.f("fk_host_commands_command_id_commands"),
            ondelete="CASCADE",
        ),
        sa.Index(op.f("ix_host_commands_host_id_state"), "host_id", "state"),
        sa.Index(op.f("ix_host_commands_command_id"), "command_id"),
    )


def _host_profiles(target: str) -> sa.Table:
    """host_profiles as 0008 left it, its host key on `target`."""
    return sa.Table(
        "host_profiles",
        sa.MetaData(),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("command_uuid", sa.String(length=64), nullable=True),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.PrimaryKeyConstraint("host_id", "profile_id", name=op.f("pk_host_profiles")),
        sa.CheckConstraint(
            "status IN ('pending', 'verifying', 'verified', 'failed', 'removing')",
            name=op.f("ck_host_profiles_status"),
        ),
        _host_key("host_profiles", target),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_host_profiles_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.Index(op.f("ix_host_profiles_profile_id"), "profile_id"),
    )


_TABLES = {"host_commands": _host_commands, "host_profiles": _host_profiles}


def _move_host_keys(old: str, new: str) -> None:
    for table, at_0008 in _TABLES.items():
        with op.batch_alter_table(table, copy_from=at_0008(old)) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_host_id_{old}"), type_="foreignkey")
            batch.create_foreign_key(
                op.f(f"fk_{table}_host_id_{new}"), new, ["host_id"], ["id"], ondelete="CASCADE"
            )


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No host may be added between the fill and the trigger: writers wait until the commit.
        op.execute("LOCK TABLE hosts IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "host_ids",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["id"], ["hosts.id"], name=op.f("fk_host_ids_id_hosts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_ids")),
    )
    op.execute("INSERT INTO host_ids (id) SELECT id FROM hosts")
    for statement in POSTGRESQL_UP if postgresql else SQLITE_UP:
        op.execute(statement)
    _move_host_keys("hosts", "host_ids")


def downgrade() -> None:
    _move_host_keys("host_ids", "hosts")
    for statement in POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("host_ids")
