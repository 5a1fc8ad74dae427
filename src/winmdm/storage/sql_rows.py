"""Pieces every SQL store module shares: row-to-domain mapping of hosts, identifier rules, the
errors for missing rows and unique clashes, and the dialect-specific INSERT (upserts) that
SQLAlchemy Core has no portable spelling for."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.exc import IntegrityError

from winmdm.domain.models import DeviceCertificate, Enrollment, Host
from winmdm.errors import Conflict, NotFound

T = TypeVar("T")


def identifier(value: str | None) -> str | None:
    """Empty identifiers identify nothing: stored as NULL so they can never match."""
    return value or None


def keep_if_null(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """For an UPDATE's SET: COALESCE(:new_<column>, column), so a NULL parameter keeps the stored
    value and one statement serves every combination of given and missing values."""
    return sa.func.coalesce(sa.bindparam(f"new_{column.name}", type_=column.type), column)


def host_missing(host_id: int) -> NotFound:
    return NotFound(f"host {host_id} does not exist; it may have been deleted meanwhile")


def team_missing(team_id: int) -> NotFound:
    return NotFound(f"team {team_id} does not exist; it may have been deleted")


def execute_unique(
    conn: Connection, statement: sa.Executable, params: Mapping[str, Any], clash: str
) -> Row[Any] | None:
    """Run a statement that may break a UNIQUE constraint; a clash raises Conflict(clash).

    In a savepoint, so the caller's transaction stays usable after a clash (PostgreSQL aborts a
    transaction at its first failed statement). Returns the statement's one row, if any.
    """
    savepoint = conn.begin_nested()
    try:
        row = conn.execute(statement, params).one_or_none()
    except IntegrityError as exc:
        savepoint.rollback()
        raise Conflict(clash) from exc
    savepoint.commit()
    return row


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
        enrollment_kind=row["enrollment_kind"],
        entra_device_id=row["entra_device_id"],
    )


def enrollment_from_row(row: Mapping[str, Any]) -> Enrollment:
    return Enrollment(
        id=row["id"],
        host_id=row["host_id"],
        device_id=row["device_id"],
        hw_dev_id=row["hw_dev_id"],
        enrollment_type=row["enrollment_type"],
        not_in_oobe=row["not_in_oobe"],
        ux_initiated=row["ux_initiated"],
        device_name=row["device_name"],
        os_version=row["os_version"],
        os_edition=row["os_edition"],
        domain_name=row["domain_name"],
        upn=row["upn"],
        token_kind=row["token_kind"],
        context=tuple((str(name), str(value)) for name, value in row["context"]),
        dm_username=row["dm_username"],
        dm_password_digest=row["dm_password_digest"],
        dm_server_secret=row["dm_server_secret"],
        dm_nonce=row["dm_nonce"],
        active=bool(row["active"]),
        created_at=row["created_at"],
        enrollment_kind=row["enrollment_kind"],
        end_user_username=row["end_user_username"],
        dm_previous_nonce=row["dm_previous_nonce"],
    )


def certificate_from_row(row: Mapping[str, Any]) -> DeviceCertificate:
    return DeviceCertificate(
        serial=row["serial"],
        host_id=row["host_id"],
        enrollment_id=row["enrollment_id"],
        thumbprint=row["thumbprint"],
        subject=row["subject"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        der=bytes(row["der"]),
        status=row["status"],
        replaces_serial=row["replaces_serial"],
        first_used_at=row["first_used_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


class IdList:
    """A list of ids as ONE bound parameter, for `column IN <list>` with any number of ids.

    One parameter per id would stop at the driver's limit (PostgreSQL's protocol takes 65,535
    parameters, SQLite 32,766) and makes the database parse and plan a new statement for every
    list length. PostgreSQL takes an integer array (`= ANY(:ids)`); SQLite a JSON array it reads
    with json_each (built in since 3.38). `IdList.value` turns the ids into what the parameter
    wants on the connection's dialect.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def contains(self, dialect: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        if dialect == "postgresql":
            return column == sa.any_(sa.bindparam(self.name, type_=postgresql.ARRAY(sa.Integer)))
        each = sa.func.json_each(sa.bindparam(self.name, type_=sa.Text)).table_valued("value")
        return column.in_(sa.select(each.c.value))

    def each(self, dialect: str) -> sa.ColumnElement[Any]:
        """The ids as rows, for an INSERT ... SELECT that trusts them (`unnest` on PostgreSQL,
        `json_each` on SQLite); see `for_listed_hosts`."""
        if dialect == "postgresql":
            ids = sa.bindparam(self.name, type_=postgresql.ARRAY(sa.Integer))
            return sa.func.unnest(ids).column_valued("id")
        each = sa.func.json_each(sa.bindparam(self.name, type_=sa.Text)).table_valued("value")
        return sa.cast(each.c.value, sa.Integer)

    def host_rows(
        self, dialect: str, host_id: sa.ColumnElement[Any], *, checking: bool
    ) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[bool]]:
        """(host id column, WHERE) of an INSERT ... SELECT over the listed hosts: the hosts that
        exist (`checking`), or the ids as given. The WHERE is always there: SQLite needs one
        before ON CONFLICT in an INSERT ... SELECT (its parser's ambiguity)."""
        if checking:
            return host_id, self.contains(dialect, host_id)
        return self.each(dialect), sa.true()

    def value(self, conn: Connection, ids: Sequence[int]) -> Any:
        """The parameter's value: the ids sorted, each once (a row per id in `each`)."""
        unique = sorted({int(i) for i in ids})
        if conn.dialect.name == "postgresql":
            return unique
        return "[" + ",".join(map(str, unique)) + "]"


# From this many hosts the trusting statement goes first (for_listed_hosts).
TRUST_FROM = 1000


def for_listed_hosts(
    conn: Connection,
    count: int,
    trusting: sa.Executable,
    checking: sa.Executable,
    params: Mapping[str, Any],
    read: Callable[[CursorResult[Any]], T],
) -> T:
    """Run an INSERT ... SELECT for `count` host ids, any of which may have been deleted meanwhile.

    `trusting` takes the ids as they are (`IdList.host_rows`) and lets the foreign key (to
    host_ids, schema.py) check each; `checking` joins hosts and skips the missing ones. At 100,000
    hosts the join reads every host once more (0.3 to 1.5 s of a 3 to 5 s fan-out on PostgreSQL
    when the keys were on hosts), so from TRUST_FROM hosts `trusting` runs first, in a savepoint,
    and `checking` only if a host is gone. Fewer hosts go straight to `checking`: a savepoint's
    two statements would cost more than the join saves.
    """
    if count < TRUST_FROM:
        return read(conn.execute(checking, params))
    savepoint = conn.begin_nested()
    try:
        value = read(conn.execute(trusting, params))
    except IntegrityError:
        savepoint.rollback()
        return read(conn.execute(checking, params))
    savepoint.commit()
    return value


def dialect_insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT support; both backends spell it the same way in SQL."""
    return insert_for_dialect(conn.dialect.name, table)


def insert_for_dialect(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class PerDialect:
    """A statement built once per dialect (ON CONFLICT needs the dialect's own INSERT).

    Built on first use and kept: constructing a SQLAlchemy statement costs more than SQLite
    takes to run it, and a statement object reused keeps its memoized cache key.
    """

    def __init__(self, build: Callable[[str], sa.Executable]) -> None:
        self._build = build
        self._built: dict[str, sa.Executable] = {}

    def __call__(self, conn: Connection) -> sa.Executable:
        name = conn.dialect.name
        statement = self._built.get(name)
        if statement is None:
            statement = self._built[name] = self._build(name)
        return statement


@functools.cache
def _upsert_statement(
    dialect: str, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> sa.Executable:
    statement = insert_for_dialect(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[key] for key in keys],
        set_={name: statement.excluded[name] for name in columns if name not in keys},
    )


def upsert(conn: Connection, table: sa.Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Insert the row, or replace every non-key column of the row with the same keys.

    One statement (ON CONFLICT DO UPDATE), so two sessions upserting together cannot both
    find the row missing and clash on the insert. Built once per dialect, table and columns;
    the row goes in as parameters.
    """
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(values), tuple(keys)), dict(values))
