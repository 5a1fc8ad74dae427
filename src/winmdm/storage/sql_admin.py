"""SQL AdminStore, AdminTokenStore, LoginFailureStore and SettingStore (admin_protocols.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.admin import Admin, AdminToken, AdminTokenKind, Role
from winmdm.errors import NotFound
from winmdm.storage.schema import admin_login_failures, admin_tokens, admins, app_settings
from winmdm.storage.sql_rows import execute_unique, upsert

# Statements are built once and run with parameter dicts (see sql.py). Parameters of an UPDATE
# are never named after a column of its table (SQLAlchemy would add them to its SET clause).
_p = sa.bindparam
_a = admins.c
_ADMIN_COLUMNS = (_a.id, _a.email, _a.role, _a.created_at)
_INSERT_ADMIN = admins.insert().returning(*_ADMIN_COLUMNS)
_GET_ADMIN = sa.select(*_ADMIN_COLUMNS).where(_a.id == _p("admin_id"))
_ADMIN_BY_EMAIL = sa.select(*_ADMIN_COLUMNS, _a.password_hash).where(_a.email == _p("email"))
_LIST_ADMINS = sa.select(*_ADMIN_COLUMNS).order_by(_a.email, _a.id)
_ADMIN_IDS = sa.select(_a.id)
_ADMIN_IDS_OF_ROLE = _ADMIN_IDS.where(_a.role == _p("role", type_=_a.role.type))
_SET_PASSWORD = (
    admins.update()
    .where(_a.id == _p("match_id"))
    .values(password_hash=_p("new_password_hash", type_=sa.Text))
)
_DELETE_ADMIN = admins.delete().where(_a.id == _p("admin_id"))

_t = admin_tokens.c
_INSERT_TOKEN = admin_tokens.insert().returning(*admin_tokens.c)
_FIND_TOKEN = (
    sa.select(*admin_tokens.c, *(column.label(f"owner_{column.name}") for column in _ADMIN_COLUMNS))
    .join_from(admin_tokens, admins, _t.admin_id == _a.id)
    .where(_t.token_hash == _p("token_hash"))
)
_GET_TOKEN = admin_tokens.select().where(_t.id == _p("token_id"))
_TOKENS_BY_AGE = admin_tokens.select().order_by(_t.created_at, _t.id)
_REVOKE_TOKEN = (
    admin_tokens.update()
    .where(_t.id == _p("match_id"), _t.revoked_at.is_(None))
    .values(revoked_at=_p("new_revoked_at", type_=_t.revoked_at.type))
)
_TOUCH_TOKEN = (
    admin_tokens.update()
    .where(_t.id == _p("match_id"))
    .values(last_used_at=_p("new_last_used_at", type_=_t.last_used_at.type))
)
_PURGE_TOKENS = admin_tokens.delete().where(_t.expires_at < _p("before", type_=_t.expires_at.type))

_f = admin_login_failures.c
_ADD_FAILURE = admin_login_failures.insert().returning(_f.id)
_SINCE = _f.at >= _p("since", type_=_f.at.type)
_FAILURES = sa.select(_f.at).order_by(_f.at.desc(), _f.id.desc()).limit(_p("limit", type_=sa.Integer))
# A None client is an address of its own: IS NULL, never "any address".
_OF_EMAIL_AND_CLIENT = sa.and_(_f.email == _p("email"), _f.client == _p("client"))
_OF_EMAIL_NO_CLIENT = sa.and_(_f.email == _p("email"), _f.client.is_(None))
_FAILURES_OF_EMAIL_AND_CLIENT = _FAILURES.where(_OF_EMAIL_AND_CLIENT, _SINCE)
_FAILURES_OF_EMAIL_NO_CLIENT = _FAILURES.where(_OF_EMAIL_NO_CLIENT, _SINCE)
_FAILURES_OF_CLIENT = _FAILURES.where(_f.client == _p("client"), _SINCE)
_REMOVE_FAILURE = admin_login_failures.delete().where(_f.id == _p("attempt_id"))
_CLEAR_FAILURES = admin_login_failures.delete().where(_OF_EMAIL_AND_CLIENT)
_CLEAR_FAILURES_NO_CLIENT = admin_login_failures.delete().where(_OF_EMAIL_NO_CLIENT)
_PURGE_FAILURES = admin_login_failures.delete().where(_f.at < _p("before", type_=_f.at.type))

_s = app_settings.c
_READ_SETTINGS = sa.select(_s.key, _s.value)
_READ_SETTINGS_LOCKED = _READ_SETTINGS.with_for_update()


def normal_email(email: str) -> str:
    """How an email is stored and compared: stripped, lower-case."""
    return email.strip().lower()


def _admin(row: Mapping[str, Any], prefix: str = "") -> Admin:
    return Admin(
        id=row[f"{prefix}id"],
        email=row[f"{prefix}email"],
        role=Role(row[f"{prefix}role"]),
        created_at=row[f"{prefix}created_at"],
    )


def _token(row: Mapping[str, Any]) -> AdminToken:
    return AdminToken(
        id=row["id"],
        admin_id=row["admin_id"],
        kind=AdminTokenKind(row["kind"]),
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class SQLAdminStore:
    """AdminStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, email: str, password_hash: str, role: Role, *, at: datetime) -> Admin:
        address = normal_email(email)
        values = {"email": address, "password_hash": password_hash, "role": Role(role), "created_at": at}
        clash = f"an admin with the email {address} already exists; use another email or that account"
        row = execute_unique(self._conn, _INSERT_ADMIN, values, clash)
        assert row is not None  # INSERT ... RETURNING
        return _admin(row._mapping)

    def get(self, admin_id: int) -> Admin | None:
        row = self._conn.execute(_GET_ADMIN, {"admin_id": admin_id}).one_or_none()
        return None if row is None else _admin(row._mapping)

    def find_by_email(self, email: str) -> Admin | None:
        found = self.credentials(email)
        return None if found is None else found[0]

    def credentials(self, email: str) -> tuple[Admin, str] | None:
        row = self._conn.execute(_ADMIN_BY_EMAIL, {"email": normal_email(email)}).one_or_none()
        return None if row is None else (_admin(row._mapping), row.password_hash)

    def set_password_hash(self, admin_id: int, password_hash: str) -> bool:
        result = self._conn.execute(_SET_PASSWORD, {"match_id": admin_id, "new_password_hash": password_hash})
        return result.rowcount == 1

    def list(self) -> list[Admin]:
        return [_admin(row._mapping) for row in self._conn.execute(_LIST_ADMINS)]

    def count(self, role: Role | None = None, *, lock: bool = False) -> int:
        # FOR UPDATE cannot go with an aggregate (PostgreSQL): the ids are locked and counted.
        statement = _ADMIN_IDS if role is None else _ADMIN_IDS_OF_ROLE
        if lock:
            statement = statement.with_for_update()
        params = {} if role is None else {"role": Role(role)}
        return len(self._conn.execute(statement, params).all())

    def delete(self, admin_id: int) -> bool:
        return self._conn.execute(_DELETE_ADMIN, {"admin_id": admin_id}).rowcount == 1


class SQLAdminTokenStore:
    """AdminTokenStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        admin_id: int,
        token_hash: str,
        kind: AdminTokenKind,
        name: str,
        *,
        at: datetime,
        expires_at: datetime | None = None,
    ) -> AdminToken:
        # Asked first: a foreign key failure would abort the transaction on PostgreSQL.
        if self._conn.execute(_GET_ADMIN, {"admin_id": admin_id}).first() is None:
            raise NotFound(f"admin {admin_id} does not exist; it may have been deleted")
        values = {
            "admin_id": admin_id,
            "token_hash": token_hash,
            "kind": AdminTokenKind(kind),
            "name": name,
            "created_at": at,
            "expires_at": expires_at,
            "revoked_at": None,
            "last_used_at": None,
        }
        # Tokens are random: the same hash twice is a bug, never chance.
        row = execute_unique(
            self._conn, _INSERT_TOKEN, values, "this token is already stored; make a new one"
        )
        assert row is not None  # INSERT ... RETURNING
        return _token(row._mapping)

    def find(self, token_hash: str) -> tuple[AdminToken, Admin] | None:
        row = self._conn.execute(_FIND_TOKEN, {"token_hash": token_hash}).one_or_none()
        if row is None:
            return None
        return _token(row._mapping), _admin(row._mapping, prefix="owner_")

    def get(self, token_id: int) -> AdminToken | None:
        row = self._conn.execute(_GET_TOKEN, {"token_id": token_id}).one_or_none()
        return None if row is None else _token(row._mapping)

    def list(self, admin_id: int | None, *, kind: AdminTokenKind | None = None) -> list[AdminToken]:
        statement = _TOKENS_BY_AGE
        params: dict[str, Any] = {}
        if admin_id is not None:
            statement = statement.where(_t.admin_id == _p("admin_id"))
            params["admin_id"] = admin_id
        if kind is not None:
            statement = statement.where(_t.kind == _p("kind", type_=_t.kind.type))
            params["kind"] = AdminTokenKind(kind)
        return [_token(row._mapping) for row in self._conn.execute(statement, params)]

    def revoke(self, token_id: int, at: datetime) -> bool:
        return self._conn.execute(_REVOKE_TOKEN, {"match_id": token_id, "new_revoked_at": at}).rowcount == 1

    def touch(self, token_id: int, at: datetime) -> None:
        self._conn.execute(_TOUCH_TOKEN, {"match_id": token_id, "new_last_used_at": at})

    def purge_expired(self, before: datetime) -> int:
        return self._conn.execute(_PURGE_TOKENS, {"before": before}).rowcount


class SQLLoginFailureStore:
    """LoginFailureStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, email: str, client: str | None, *, at: datetime) -> int:
        row = self._conn.execute(
            _ADD_FAILURE, {"email": normal_email(email), "client": client or None, "at": at}
        )
        return row.scalar_one()

    def recent(
        self, *, since: datetime, email: str | None = None, client: str | None = None, limit: int = 100
    ) -> list[datetime]:
        params: dict[str, Any] = {"since": since, "limit": limit, "client": client or None}
        if email is not None:
            params["email"] = normal_email(email)
            statement = _FAILURES_OF_EMAIL_AND_CLIENT if client else _FAILURES_OF_EMAIL_NO_CLIENT
        elif client:
            statement = _FAILURES_OF_CLIENT
        else:
            return []
        return [row.at for row in self._conn.execute(statement, params)]

    def remove(self, attempt_id: int) -> None:
        self._conn.execute(_REMOVE_FAILURE, {"attempt_id": attempt_id})

    def clear(self, email: str, client: str | None) -> int:
        params = {"email": normal_email(email), "client": client or None}
        return self._conn.execute(_CLEAR_FAILURES if client else _CLEAR_FAILURES_NO_CLIENT, params).rowcount

    def purge(self, before: datetime) -> int:
        return self._conn.execute(_PURGE_FAILURES, {"before": before}).rowcount


class SQLSettingStore:
    """SettingStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def read(self, *, lock: bool = False) -> dict[str, Any]:
        rows = self._conn.execute(_READ_SETTINGS_LOCKED if lock else _READ_SETTINGS)
        return {row.key: row.value for row in rows}

    def write(self, values: Mapping[str, Any], *, at: datetime) -> None:
        for key, value in values.items():
            upsert(self._conn, app_settings, {"key": key, "value": value, "updated_at": at}, ["key"])
