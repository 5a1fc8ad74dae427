"""Administration: admin accounts, their tokens, failed sign-ins, and the server's settings.

Revision ID: 0004_admin
Revises: 0003_identity
Create Date: 2026-12-15

Written out by hand with plain SQLAlchemy types, like 0001 to 0003. Only new tables: nothing
existing is rebuilt, so SQLite's foreign keys are no concern here.

The MDM settings are inserted with their values, so a database upgraded from 0003 and a fresh one
read the same: Windows MDM on, migration off, end-user experience Automatic (the manual switch
off). No team's end-user authentication is deliberately not inserted: until an admin sets it, it
follows WINMDM_END_USER_AUTH, as at 0003.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_admin"
down_revision: str | None = "0003_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SETTINGS = {
    "windows_enabled_and_configured": True,
    "windows_migration_enabled": False,
    "enable_turn_on_windows_mdm_manually": False,
}


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.CheckConstraint("role IN ('observer', 'maintainer', 'admin')", name=op.f("ck_admins_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("email", name=op.f("uq_admins_email")),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("expires_at", _aware(), nullable=True),
        sa.Column("revoked_at", _aware(), nullable=True),
        sa.Column("last_used_at", _aware(), nullable=True),
        sa.CheckConstraint("kind IN ('session', 'api')", name=op.f("ck_admin_tokens_kind")),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admins.id"], name=op.f("fk_admin_tokens_admin_id_admins"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_tokens_token_hash")),
    )
    op.create_index(op.f("ix_admin_tokens_admin_id"), "admin_tokens", ["admin_id"])
    op.create_table(
        "admin_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("client", sa.Text(), nullable=True),
        sa.Column("at", _aware(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_login_failures")),
    )
    op.create_index(op.f("ix_admin_login_failures_email_at"), "admin_login_failures", ["email", "at"])
    op.create_index(op.f("ix_admin_login_failures_client_at"), "admin_login_failures", ["client", "at"])
    op.create_index(op.f("ix_admin_login_failures_at"), "admin_login_failures", ["at"])
    settings = op.create_table(
        "app_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", _aware(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_app_settings")),
    )
    rows = [{"key": key, "value": value, "updated_at": None} for key, value in DEFAULT_SETTINGS.items()]
    op.bulk_insert(settings, rows)


def downgrade() -> None:
    op.drop_table("app_settings")
    op.drop_index(op.f("ix_admin_login_failures_at"), table_name="admin_login_failures")
    op.drop_index(op.f("ix_admin_login_failures_client_at"), table_name="admin_login_failures")
    op.drop_index(op.f("ix_admin_login_failures_email_at"), table_name="admin_login_failures")
    op.drop_table("admin_login_failures")
    op.drop_index(op.f("ix_admin_tokens_admin_id"), table_name="admin_tokens")
    op.drop_table("admin_tokens")
    op.drop_table("admins")
