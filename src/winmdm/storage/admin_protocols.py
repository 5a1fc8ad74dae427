"""Store protocols for administering winmdm (issue 6): admin accounts, their tokens, failed
sign-ins, and the server's settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from winmdm.domain.admin import Admin, AdminToken, AdminTokenKind, Role


class AdminStore(Protocol):
    def create(self, email: str, password_hash: str, role: Role, *, at: datetime) -> Admin:
        """Emails are stored lower-case and unique; a clash raises winmdm.errors.Conflict
        naming the email (the transaction stays usable)."""
        ...

    def get(self, admin_id: int) -> Admin | None: ...

    def find_by_email(self, email: str) -> Admin | None:
        """Case-insensitive."""
        ...

    def credentials(self, email: str) -> tuple[Admin, str] | None:
        """The admin with this email (case-insensitive) and their password hash."""
        ...

    def set_password_hash(self, admin_id: int, password_hash: str) -> bool:
        """True when the admin exists."""
        ...

    def list(self) -> list[Admin]:
        """By email."""
        ...

    def count(self, role: Role | None = None, *, lock: bool = False) -> int:
        """How many admins (with this role). `lock` locks those rows until the transaction ends
        (PostgreSQL; SQLite transactions are serial anyway), so two transactions cannot both see
        two admins and each delete one."""
        ...

    def delete(self, admin_id: int) -> bool:
        """True when it existed; its tokens go with it."""
        ...


class AdminTokenStore(Protocol):
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
        """`token_hash` is the hex SHA-256 of the token; a clash raises Conflict. NotFound for an
        unknown admin."""
        ...

    def find(self, token_hash: str) -> tuple[AdminToken, Admin] | None:
        """The token with this hash and its admin, revoked and expired ones included."""
        ...

    def get(self, token_id: int) -> AdminToken | None: ...

    def list(self, admin_id: int | None, *, kind: AdminTokenKind | None = None) -> list[AdminToken]:
        """The admin's tokens (None: everyone's), of one kind or all, oldest first."""
        ...

    def revoke(self, token_id: int, at: datetime) -> bool:
        """True when it was not revoked yet."""
        ...

    def touch(self, token_id: int, at: datetime) -> None:
        """Record a use (last_used_at)."""
        ...

    def purge_expired(self, before: datetime) -> int:
        """Forget tokens that expired before `before`; how many."""
        ...


class LoginFailureStore(Protocol):
    """Sign-in attempts that did not succeed (yet), in the database so that the limit holds
    across instances. An attempt is written before its password is checked (services/sign_in.py)."""

    def add(self, email: str, client: str | None, *, at: datetime) -> int:
        """Record an attempt; its id."""
        ...

    def recent(
        self, *, since: datetime, email: str | None = None, client: str | None = None, limit: int = 100
    ) -> list[datetime]:
        """When the attempts for this email from this client address happened at or after
        `since`, newest first (at most `limit`); with only `client`, from that address for any
        email. A None client is an address of its own (unknown). Neither given: empty."""
        ...

    def remove(self, attempt_id: int) -> None:
        """Forget one attempt (refused before its password was looked at)."""
        ...

    def clear(self, email: str, client: str | None) -> int:
        """Forget the email's attempts from this address (after it signed in); how many."""
        ...

    def purge(self, before: datetime) -> int:
        """Forget attempts older than `before`; how many."""
        ...


class SettingStore(Protocol):
    """The server's settings (`mdm.*`), one JSON value per key."""

    def read(self, *, lock: bool = False) -> dict[str, Any]:
        """Every stored setting. `lock` locks them until the transaction ends (PostgreSQL), so
        rules between settings hold under concurrent updates."""
        ...

    def write(self, values: Mapping[str, Any], *, at: datetime) -> None:
        """Insert or replace these keys' values."""
        ...
