"""Enrollment identity: teams' end-user sign-in, manual/automatic, used tokens, bulk secrets.

Revision ID: 0003_identity
Revises: 0002_management
Create Date: 2026-12-01

Written out by hand with plain SQLAlchemy types, like 0001 and 0002.

Widening enrollments' token_kind CHECK needs a table rebuild on SQLite (batch "recreate": new
table, copy, DROP, rename). With foreign keys on, that DROP would cascade-delete every device
certificate, so this revision refuses to run on SQLite unless foreign keys are off;
`winmdm.storage.database.migrate` turns them off before its transaction begins and runs
`PRAGMA foreign_key_check` before committing. The rebuild is given the table as it stands at
0002 (`copy_from`), so every constraint, index and foreign key is restated, not reflected.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_identity"
down_revision: str | None = "0002_management"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_TOKEN_KINDS = "token_kind IN ('entra_jwt', 'renewal')"
_NEW_TOKEN_KINDS = "token_kind IN ('entra_jwt', 'renewal', 'enrollment_token', 'bulk_secret')"
_HOST_KIND = "enrollment_kind IN ('manual', 'automatic')"


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _enrollments_at_0002(token_kinds: str) -> sa.Table:
    """enrollments as revisions 0001 and 0002 left it (0003's columns excluded)."""
    return sa.Table(
        "enrollments",
        sa.MetaData(),
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
        sa.CheckConstraint(token_kinds, name=op.f("ck_enrollments_token_kind")),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_enrollments_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.Index(op.f("ix_enrollments_host_id_active"), "host_id", "active"),
        sa.Index(op.f("ix_enrollments_device_id"), "device_id"),
    )


def _refuse_cascading_rebuild() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "revision 0003_identity rebuilds the enrollments table, which with SQLite foreign keys "
            "on would delete every device certificate; run it through `winmdm.storage.migrate` "
            "(the winmdm server does at start), which turns foreign keys off around the migration"
        )


def upgrade() -> None:
    _refuse_cascading_rebuild()
    op.add_column(
        "teams",
        sa.Column("end_user_auth", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # A column CHECK rides along ADD COLUMN: no rebuild of hosts, and DROP COLUMN still works.
    op.add_column(
        "hosts",
        sa.Column(
            "enrollment_kind",
            sa.String(length=32),
            sa.CheckConstraint(_HOST_KIND, name=op.f("ck_hosts_enrollment_kind")),
            nullable=True,
        ),
    )

    with op.batch_alter_table("enrollments", copy_from=_enrollments_at_0002(_OLD_TOKEN_KINDS)) as batch:
        batch.add_column(sa.Column("enrollment_kind", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("end_user_username", sa.Text(), nullable=True))
        batch.drop_constraint(op.f("ck_enrollments_token_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_enrollments_token_kind"), _NEW_TOKEN_KINDS)
        batch.create_check_constraint(
            op.f("ck_enrollments_enrollment_kind"), "enrollment_kind IN ('manual', 'automatic')"
        )

    op.create_table(
        "enrollment_tokens_used",
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _aware(), nullable=False),
        sa.Column("used_at", _aware(), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_enrollment_tokens_used")),
    )
    op.create_index(op.f("ix_enrollment_tokens_used_expires_at"), "enrollment_tokens_used", ["expires_at"])

    op.create_table(
        "enrollment_secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("revoked_at", _aware(), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_enrollment_secrets_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_secrets")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_enrollment_secrets_secret_hash")),
    )
    op.create_index(op.f("ix_enrollment_secrets_team_id"), "enrollment_secrets", ["team_id"])


def downgrade() -> None:
    _refuse_cascading_rebuild()
    # 0002 cannot hold enrollments made with the new credentials; say so rather than drop them.
    newer = op.get_bind().exec_driver_sql(
        "SELECT COUNT(*) FROM enrollments WHERE token_kind NOT IN ('entra_jwt', 'renewal')"
    )
    count = newer.scalar()
    if count:
        raise RuntimeError(
            f"{count} enrollment(s) used a sign-in page token or a bulk secret, which revision "
            f"0002_management cannot store; delete those hosts or stay at 0003_identity"
        )

    op.drop_index(op.f("ix_enrollment_secrets_team_id"), table_name="enrollment_secrets")
    op.drop_table("enrollment_secrets")
    op.drop_index(op.f("ix_enrollment_tokens_used_expires_at"), table_name="enrollment_tokens_used")
    op.drop_table("enrollment_tokens_used")

    with op.batch_alter_table("enrollments", copy_from=_enrollments_at_0003()) as batch:
        batch.drop_constraint(op.f("ck_enrollments_enrollment_kind"), type_="check")
        batch.drop_constraint(op.f("ck_enrollments_token_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_enrollments_token_kind"), _OLD_TOKEN_KINDS)
        batch.drop_column("end_user_username")
        batch.drop_column("enrollment_kind")

    # Plain DROP COLUMN (SQLite 3.35+ allows it: the CHECK is the column's own).
    op.drop_column("hosts", "enrollment_kind")
    op.drop_column("teams", "end_user_auth")


def _enrollments_at_0003() -> sa.Table:
    table = _enrollments_at_0002(_NEW_TOKEN_KINDS)
    table.append_column(sa.Column("enrollment_kind", sa.String(length=32), nullable=True))
    table.append_column(sa.Column("end_user_username", sa.Text(), nullable=True))
    table.append_constraint(
        sa.CheckConstraint(
            "enrollment_kind IN ('manual', 'automatic')", name=op.f("ck_enrollments_enrollment_kind")
        )
    )
    return table
