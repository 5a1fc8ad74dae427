"""The fleet views at a million hosts: host counts kept by triggers, an index for rare statuses.

Revision ID: 0007_fleet_scale_indexes
Revises: 0006_sessions_per_enrollment
Create Date: 2026-12-04

Written out by hand with plain SQLAlchemy types, like 0001 to 0006. benchmarks/scale.py found
every count of the dashboard and of the hosts list (its total) reading the whole hosts table: a
parallel sequential scan of ~340 MB at a million hosts, 0.2 to 1 s. Indexes for an index-only
count help only right after a vacuum: every check-in updates its host (last_seen_at), which
takes the page out of the visibility map, so between two vacuums most counted rows need a heap
fetch again (5 % of the hosts checking in made the summary 1.5 s). So:

- host_status_counts holds the counts as rows of changes (schema.py says why), filled here from
  the hosts as they are, then kept by triggers on hosts: inserts and deletes add +n/-n per
  (team, status, kind); an update adds -1 and +1 only when one of those three columns changes,
  so a check-in, which sets last_seen_at, does not fire it at all. PostgreSQL counts inserted
  and deleted rows per statement (transition tables; a bulk insert adds one row per group);
  SQLite per row. Team deletion moves hosts to No team through the foreign key's SET NULL,
  which fires the update trigger on both.
- (mdm_status, enrollment_kind) on hosts: the first page of the hosts list for a status few
  hosts have, found through the index instead of walking every host by id.

On PostgreSQL the CREATE INDEX and the fill take a few seconds per million hosts, during which
writes to hosts wait (the migration is one transaction; CONCURRENTLY cannot run in one).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_fleet_scale_indexes"
down_revision: str | None = "0006_sessions_per_enrollment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "team_id, mdm_status, enrollment_kind"
_CHANGED = (
    "OLD.team_id IS DISTINCT FROM NEW.team_id OR OLD.mdm_status IS DISTINCT FROM NEW.mdm_status "
    "OR OLD.enrollment_kind IS DISTINCT FROM NEW.enrollment_kind"
)
_INSERT = f"INSERT INTO host_status_counts ({_COLUMNS}, hosts)"

POSTGRESQL_UP = [
    f"""CREATE FUNCTION host_status_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_INSERT} SELECT {_COLUMNS}, count(*) FROM added GROUP BY {_COLUMNS};
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION host_status_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_INSERT} SELECT {_COLUMNS}, -count(*) FROM removed GROUP BY {_COLUMNS};
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION host_status_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_INSERT} VALUES (OLD.team_id, OLD.mdm_status, OLD.enrollment_kind, -1),
                         (NEW.team_id, NEW.mdm_status, NEW.enrollment_kind, 1);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER host_status_counts_insert AFTER INSERT ON hosts REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION host_status_counts_inserted()",
    "CREATE TRIGGER host_status_counts_delete AFTER DELETE ON hosts REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION host_status_counts_deleted()",
    f"CREATE TRIGGER host_status_counts_update AFTER UPDATE OF {_COLUMNS} ON hosts FOR EACH ROW "
    f"WHEN ({_CHANGED}) EXECUTE FUNCTION host_status_counts_updated()",
]
POSTGRESQL_DOWN = [
    *(f"DROP TRIGGER host_status_counts_{name} ON hosts" for name in ("insert", "delete", "update")),
    *(f"DROP FUNCTION host_status_counts_{name}()" for name in ("inserted", "deleted", "updated")),
]
SQLITE_UP = [
    "CREATE TRIGGER host_status_counts_insert AFTER INSERT ON hosts BEGIN "
    f"{_INSERT} VALUES (NEW.team_id, NEW.mdm_status, NEW.enrollment_kind, 1); END",
    "CREATE TRIGGER host_status_counts_delete AFTER DELETE ON hosts BEGIN "
    f"{_INSERT} VALUES (OLD.team_id, OLD.mdm_status, OLD.enrollment_kind, -1); END",
    f"CREATE TRIGGER host_status_counts_update AFTER UPDATE OF {_COLUMNS} ON hosts "
    f"WHEN {_CHANGED.replace('IS DISTINCT FROM', 'IS NOT')} BEGIN "
    f"{_INSERT} VALUES (OLD.team_id, OLD.mdm_status, OLD.enrollment_kind, -1); "
    f"{_INSERT} VALUES (NEW.team_id, NEW.mdm_status, NEW.enrollment_kind, 1); END",
]
SQLITE_DOWN = [f"DROP TRIGGER host_status_counts_{name}" for name in ("insert", "delete", "update")]


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # No host may change between the fill and the triggers: writers wait until the commit.
        # (SQLite: the migration's transaction is the only writer anyway.)
        op.execute("LOCK TABLE hosts IN SHARE ROW EXCLUSIVE MODE")
    op.create_index(op.f("ix_hosts_mdm_status_enrollment_kind"), "hosts", ["mdm_status", "enrollment_kind"])
    op.create_table(
        "host_status_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("mdm_status", sa.String(32), nullable=False),
        sa.Column("enrollment_kind", sa.String(32), nullable=True),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_status_counts")),
    )
    op.execute(f"{_INSERT} SELECT {_COLUMNS}, count(*) FROM hosts GROUP BY {_COLUMNS}")
    for statement in POSTGRESQL_UP if postgresql else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POSTGRESQL_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("host_status_counts")
    op.drop_index(op.f("ix_hosts_mdm_status_enrollment_kind"), table_name="hosts")
