"""Initial schema: teams, hosts, enrollments, device certificates.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-23

Written out by hand with plain SQLAlchemy types (not winmdm's TypeDecorators), so this revision
stays what it is whatever later happens to `winmdm.storage.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("hw_dev_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("serial", sa.Text(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("mdm_status", sa.String(length=32), nullable=False),
        sa.Column("os_version", sa.Text(), nullable=True),
        sa.Column("os_edition", sa.Text(), nullable=True),
        sa.Column("idp_username", sa.Text(), nullable=True),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("updated_at", _aware(), nullable=False),
        sa.Column("last_seen_at", _aware(), nullable=True),
        sa.CheckConstraint("mdm_status IN ('pending', 'on', 'off')", name=op.f("ck_hosts_mdm_status")),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_hosts_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
    )
    op.create_index(op.f("ix_hosts_uuid"), "hosts", ["uuid"], unique=True)
    op.create_index(op.f("ix_hosts_hw_dev_id"), "hosts", ["hw_dev_id"])
    op.create_index(op.f("ix_hosts_device_id"), "hosts", ["device_id"])
    op.create_index(op.f("ix_hosts_serial"), "hosts", ["serial"])
    op.create_index(op.f("ix_hosts_team_id"), "hosts", ["team_id"])

    op.create_table(
        "enrollments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("hw_dev_id", sa.Text(), nullable=True),
        sa.Column("enrollment_type", sa.String(length=32), nullable=False),
        sa.Column("not_in_oobe", sa.Boolean(), nullable=True),
        sa.Column("ux_initiated", sa.Boolean(), nullable=True),
        sa.Column("device_name", sa.Text(), nullable=True),
        sa.Column("os_version", sa.Text(), nullable=True),
        sa.Column("os_edition", sa.Text(), nullable=True),
        sa.Column("domain_name", sa.Text(), nullable=True),
        sa.Column("upn", sa.Text(), nullable=True),
        sa.Column("token_kind", sa.String(length=32), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("dm_username", sa.Text(), nullable=False),
        sa.Column("dm_password_digest", sa.Text(), nullable=False),
        sa.Column("dm_server_secret", sa.Text(), nullable=False),
        sa.Column("dm_nonce", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.CheckConstraint(
            "enrollment_type IN ('Full', 'Device', 'Lite')",
            name=op.f("ck_enrollments_enrollment_type"),
        ),
        sa.CheckConstraint("token_kind IN ('entra_jwt', 'renewal')", name=op.f("ck_enrollments_token_kind")),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_enrollments_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index(op.f("ix_enrollments_host_id_active"), "enrollments", ["host_id", "active"])

    op.create_table(
        "device_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_before", _aware(), nullable=False),
        sa.Column("not_after", _aware(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("replaces_serial", sa.String(length=64), nullable=True),
        sa.Column("first_used_at", _aware(), nullable=True),
        sa.Column("revoked_at", _aware(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_device_certificates_status")),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_device_certificates_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_device_certificates_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_certificates")),
    )
    op.create_index(op.f("ix_device_certificates_serial"), "device_certificates", ["serial"], unique=True)
    op.create_index(op.f("ix_device_certificates_host_id"), "device_certificates", ["host_id"])
    op.create_index(op.f("ix_device_certificates_enrollment_id"), "device_certificates", ["enrollment_id"])


def downgrade() -> None:
    op.drop_table("device_certificates")
    op.drop_table("enrollments")
    op.drop_table("hosts")
    op.drop_table("teams")
