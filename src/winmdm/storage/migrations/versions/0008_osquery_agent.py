"""The osquery agent channel: enrolled nodes, live queries and policies (docs/agent-channel.md,
docs/policies.md).

Revision ID: 0008_osquery_agent
Revises: 0007_fleet_scale_indexes
Create Date: 2026-12-05

Written out by hand with plain SQLAlchemy types, like 0001 to 0007. Only new tables, so nothing
existing is rebuilt (SQLite's foreign keys and the host_status_counts triggers of 0007 on hosts
are untouched). Hosts upgraded from 0007 have no agent until their osquery enrolls.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_osquery_agent"
down_revision: str | None = "0007_fleet_scale_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "osquery_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("node_key_hash", sa.String(length=64), nullable=False),
        sa.Column("host_identifier", sa.Text(), nullable=True),
        sa.Column("hardware_uuid", sa.Text(), nullable=True),
        sa.Column("hardware_serial", sa.Text(), nullable=True),
        sa.Column("platform_type", sa.Text(), nullable=True),
        sa.Column("osquery_version", sa.Text(), nullable=True),
        sa.Column("enrolled_at", _aware(), nullable=False),
        sa.Column("last_seen_at", _aware(), nullable=False),
        sa.Column("mdm_checked_at", _aware(), nullable=True),
        sa.Column("status_logs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("result_logs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_log_at", _aware(), nullable=True),
        sa.Column("policies_run_at", _aware(), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_osquery_nodes_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_osquery_nodes")),
        sa.UniqueConstraint("host_id", name=op.f("uq_osquery_nodes_host_id")),
        sa.UniqueConstraint("node_key_hash", name=op.f("uq_osquery_nodes_node_key_hash")),
    )
    op.create_index(op.f("ix_osquery_nodes_hardware_uuid"), "osquery_nodes", ["hardware_uuid"])
    op.create_table(
        "live_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("sent_at", _aware(), nullable=True),
        sa.Column("done_at", _aware(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sent', 'done')", name=op.f("ck_live_queries_state")),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_live_queries_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_queries")),
    )
    op.create_index(op.f("ix_live_queries_host_id_state"), "live_queries", ["host_id", "state"])
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("team_key", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.CheckConstraint("team_key = COALESCE(team_id, 0)", name=op.f("ck_policies_team_key")),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_policies_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("team_key", "name", name=op.f("uq_policies_team_key_name")),
    )
    op.create_index(op.f("ix_policies_team_id"), "policies", ["team_id"])
    op.create_table(
        "policy_results",
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Boolean(), nullable=True),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
            name=op.f("fk_policy_results_policy_id_policies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_policy_results_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("policy_id", "host_id", name=op.f("pk_policy_results")),
    )
    op.create_index(op.f("ix_policy_results_host_id"), "policy_results", ["host_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_results_host_id"), table_name="policy_results")
    op.drop_table("policy_results")
    op.drop_index(op.f("ix_policies_team_id"), table_name="policies")
    op.drop_table("policies")
    op.drop_index(op.f("ix_live_queries_host_id_state"), table_name="live_queries")
    op.drop_table("live_queries")
    op.drop_index(op.f("ix_osquery_nodes_hardware_uuid"), table_name="osquery_nodes")
    op.drop_table("osquery_nodes")
