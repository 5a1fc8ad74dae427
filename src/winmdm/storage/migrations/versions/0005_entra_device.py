"""Hosts remember their Entra device id: a known PC follows its team on the Entra terms page.

Revision ID: 0005_entra_device
Revises: 0004_admin
Create Date: 2026-12-20

Written out by hand with plain SQLAlchemy types, like 0001 to 0004. One nullable column and its
index on hosts: ADD COLUMN without a constraint needs no table rebuild on SQLite, and DROP COLUMN
(SQLite 3.35+) undoes it once the index is gone. Hosts enrolled before this revision have no
Entra device id until they enroll through Entra again; until then the terms page treats them as
new PCs (No team's end-user authentication), as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_entra_device"
down_revision: str | None = "0004_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hosts", sa.Column("entra_device_id", sa.Text(), nullable=True))
    op.create_index(op.f("ix_hosts_entra_device_id"), "hosts", ["entra_device_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hosts_entra_device_id"), table_name="hosts")
    op.drop_column("hosts", "entra_device_id")
