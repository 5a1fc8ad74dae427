"""Pieces every SQL store module shares: row-to-domain mapping of hosts, identifier rules and
the dialect-specific INSERT (upserts) that SQLAlchemy Core has no portable spelling for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from winmdm.domain.models import Host


def identifier(value: str | None) -> str | None:
    """Empty identifiers identify nothing: stored as NULL so they can never match."""
    return value or None


def host_from_row(row: Mapping[str, Any]) -> Host:
    return Host(
        id=row["id"],
        uuid=row["uuid"],
        display_name=row["display_name"],
        hw_dev_id=row["hw_dev_id"],
        device_id=row["device_id"],
        serial=row["serial"],
        team_id=row["team_id"],
        mdm_status=row["mdm_status"],
        os_version=row["os_version"],
        os_edition=row["os_edition"],
        idp_username=row["idp_username"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_seen_at=row["last_seen_at"],
    )


def dialect_insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT support; both backends spell it the same way in SQL."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(conn: Connection, table: sa.Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Insert the row, or replace every non-key column of the row with the same keys.

    One statement (ON CONFLICT DO UPDATE), so two sessions upserting together cannot both
    find the row missing and clash on the insert.
    """
    statement = dialect_insert(conn, table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys],
        set_={name: statement.excluded[name] for name in values if name not in keys},
    )
    conn.execute(statement)
