"""OMA-DM sessions belong to an enrollment, every message is proven, the previous nonce is kept.

Revision ID: 0006_sessions_per_enrollment
Revises: 0005_entra_device
Create Date: 2026-12-04

Written out by hand with plain SQLAlchemy types, like 0001 to 0005.
- mdm_sessions is made anew, keyed by enrollment (it was keyed by host, so a PC enrolled again
  whose SessionID repeated met its old session). Sessions are transient: the rows of the old
  table are dropped. A session in progress during the upgrade starts over; the commands it had
  sent are sent again by the device's next session, as after any broken session.
- host_commands.session_id becomes session_key: the session's own key, not the device's
  SessionID (which repeats). Old values never equal a new key, so what they mark as sent in a
  broken session is sent again.
- enrollments.dm_previous_nonce: the nonce before dm_nonce, for the one-shot unenroll alert.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_sessions_per_enrollment"
down_revision: str | None = "0005_entra_device"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("mdm_sessions")
    op.create_table(
        "mdm_sessions",
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("session_key", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("proof", sa.String(32), nullable=True),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("started_at", _aware(), nullable=True),
        sa.Column("updated_at", _aware(), nullable=True),
        sa.CheckConstraint("proof IN ('certificate', 'digest')", name=op.f("ck_mdm_sessions_proof")),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_mdm_sessions_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("enrollment_id", name=op.f("pk_mdm_sessions")),
    )
    op.alter_column("host_commands", "session_id", new_column_name="session_key")
    op.add_column("enrollments", sa.Column("dm_previous_nonce", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("enrollments", "dm_previous_nonce")
    op.alter_column("host_commands", "session_key", new_column_name="session_id")
    op.drop_table("mdm_sessions")
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
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_mdm_sessions_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_mdm_sessions")),
    )
