"""OMA-DM management: inventory columns, command queue, sessions, profiles, agent, activities.

Revision ID: 0002_management
Revises: 0001_initial
Create Date: 2026-11-23

Written out by hand with plain SQLAlchemy types, like 0001, so it stays what it is whatever
later happens to `winmdm.storage.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_management"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOST_COLUMNS = ("manufacturer", "model", "language", "dm_version")


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _host_fk(name: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f(name), ondelete=ondelete)


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on both backends, existing hosts get NULL.
    for column in _HOST_COLUMNS:
        op.add_column("hosts", sa.Column(column, sa.Text(), nullable=True))
    op.create_index(op.f("ix_enrollments_device_id"), "enrollments", ["device_id"])

    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("created_at", _aware(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('raw', 'inventory', 'profile', 'profile_verify', 'profile_remove', "
            "'agent_install', 'agent_status', 'reboot', 'wipe', 'wipe_protected', 'unenroll')",
            name=op.f("ck_commands_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    op.create_index(op.f("ix_commands_uuid"), "commands", ["uuid"], unique=True)

    op.create_table(
        "host_commands",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("msg_id", sa.Integer(), nullable=True),
        sa.Column("cmd_ids", sa.JSON(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("replies", sa.JSON(), nullable=False),
        sa.Column("raw_reply", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", _aware(), nullable=False),
        sa.Column("sent_at", _aware(), nullable=True),
        sa.Column("done_at", _aware(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'done')", name=op.f("ck_host_commands_state")),
        _host_fk("fk_host_commands_host_id_hosts"),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.id"],
            name=op.f("fk_host_commands_command_id_commands"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host_id", "command_id", name=op.f("pk_host_commands")),
    )
    op.create_index(op.f("ix_host_commands_host_id_state"), "host_commands", ["host_id", "state"])
    op.create_index(op.f("ix_host_commands_command_id"), "host_commands", ["command_id"])

    op.create_table(
        "mdm_sessions",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("client_msg_id", sa.Integer(), nullable=False),
        sa.Column("server_msg_id", sa.Integer(), nullable=False),
        sa.Column("last_response", sa.LargeBinary(), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("sent", sa.JSON(), nullable=False),
        sa.Column("pending_chunks", sa.JSON(), nullable=False),
        sa.Column("incoming", sa.JSON(), nullable=True),
        sa.Column("started_at", _aware(), nullable=True),
        sa.Column("updated_at", _aware(), nullable=True),
        _host_fk("fk_mdm_sessions_host_id_hosts"),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_mdm_sessions")),
    )

    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("team_key", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("syncml", sa.Text(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.CheckConstraint("team_key = COALESCE(team_id, 0)", name=op.f("ck_profiles_team_key")),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_profiles_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
        sa.UniqueConstraint("team_key", "name", name=op.f("uq_profiles_team_key_name")),
    )
    op.create_index(op.f("ix_profiles_team_id"), "profiles", ["team_id"])

    op.create_table(
        "host_profiles",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("command_uuid", sa.String(length=64), nullable=True),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'verifying', 'verified', 'failed', 'removing')",
            name=op.f("ck_host_profiles_status"),
        ),
        _host_fk("fk_host_profiles_host_id_hosts"),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_host_profiles_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host_id", "profile_id", name=op.f("pk_host_profiles")),
    )
    op.create_index(op.f("ix_host_profiles_profile_id"), "host_profiles", ["profile_id"])

    op.create_table(
        "agent_package",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("product_code", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("install_args", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_agent_package_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_package")),
    )

    op.create_table(
        "host_agent",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("command_uuid", sa.String(length=64), nullable=True),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'installing', 'installed', 'failed')",
            name=op.f("ck_host_agent_status"),
        ),
        _host_fk("fk_host_agent_host_id_hosts"),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_host_agent")),
    )

    op.create_table(
        "activities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        _host_fk("fk_activities_host_id_hosts", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
    )
    op.create_index(op.f("ix_activities_host_id_id"), "activities", ["host_id", "id"])


def downgrade() -> None:
    for table in (
        "activities",
        "host_agent",
        "agent_package",
        "host_profiles",
        "profiles",
        "mdm_sessions",
        "host_commands",
        "commands",
    ):
        op.drop_table(table)
    op.drop_index(op.f("ix_enrollments_device_id"), table_name="enrollments")
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of hosts would cascade-delete its
    # enrollments and certificates when the old table is dropped with foreign keys on.
    for column in reversed(_HOST_COLUMNS):
        op.drop_column("hosts", column)
