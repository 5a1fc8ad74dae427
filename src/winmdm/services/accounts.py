"""Admin accounts: passwords, sign-in with its rate limit, session and API tokens, roles.

Passwords are stored as argon2id hashes; tokens as the hex SHA-256 of the token (they are long
random strings, so a fast hash is enough). A token carries a readable prefix ("wmdm_s_" for a
session, "wmdm_a_" for an API token) so a leaked one is recognisable in logs and secret
scanners. Failed sign-ins are counted in the database, per email and client address, so the limit
holds across every instance sharing it (services/sign_in.py, docs/api.md).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from winmdm.domain.admin import Admin, AdminToken, AdminTokenKind, Principal, Role
from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
)
from winmdm.services.sign_in import HashSlots, SignInLimit

if TYPE_CHECKING:  # the CLI imports this module; storage (SQLAlchemy, Alembic) loads on use
    from winmdm.metrics import Metrics
    from winmdm.storage.protocols import Storage, Transaction

__all__ = [
    "ACTIVITY_CREATED_ADMIN",
    "ACTIVITY_CREATED_API_TOKEN",
    "ACTIVITY_DELETED_ADMIN",
    "ACTIVITY_REVOKED_API_TOKEN",
    "API_PREFIX",
    "MESSAGE_WRONG_CREDENTIALS",
    "MIN_PASSWORD_LENGTH",
    "SESSION_LIFETIME",
    "SESSION_PREFIX",
    "AdminAccounts",
    "IssuedToken",
    "Principal",
]

SESSION_LIFETIME = timedelta(hours=24)
TOUCH_INTERVAL = timedelta(minutes=1)
"""last_used_at is written at most this often per token: most requests only read."""
EXPIRED_KEPT = timedelta(days=7)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this only bounds the work one request costs
MAX_TOKEN_NAME = 100
SESSION_PREFIX = "wmdm_s_"
API_PREFIX = "wmdm_a_"
_PREFIXES = {AdminTokenKind.SESSION: SESSION_PREFIX, AdminTokenKind.API: API_PREFIX}
_TOKEN_PREFIXES = (SESSION_PREFIX, API_PREFIX)
_MAX_TOKEN = 256
_MAX_EMAIL = 254
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")

ACTIVITY_CREATED_ADMIN = "created_admin"
ACTIVITY_DELETED_ADMIN = "deleted_admin"
ACTIVITY_CREATED_API_TOKEN = "created_api_token"
ACTIVITY_REVOKED_API_TOKEN = "revoked_api_token"

MESSAGE_WRONG_CREDENTIALS = "The email or password is wrong. Check both and try again."
MESSAGE_TOKEN_UNKNOWN = (
    "This token is not valid: it may have been mistyped or its admin deleted. Sign in again, or "
    "use another API token."
)
MESSAGE_TOKEN_REVOKED = "This token was revoked. Sign in again, or use another API token."
MESSAGE_SESSION_EXPIRED = "This session expired on {at:%Y-%m-%d %H:%M} UTC. Sign in again."


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as it is made: `token` is shown once and never stored."""

    token: str
    token_id: int
    admin: Admin
    expires_at: datetime | None  # None: never (API tokens)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AdminAccounts:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        *,
        hasher: PasswordHasher | None = None,
        session_lifetime: timedelta = SESSION_LIFETIME,
        hash_slots: HashSlots | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`hasher`: argon2id with argon2-cffi's defaults (RFC 9106 low-memory) unless given."""
        self._storage = storage
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._session_lifetime = session_lifetime
        self._limit = SignInLimit(storage, clock, metrics=metrics)
        self._slots = hash_slots or HashSlots()

    # -- accounts -------------------------------------------------------------------------------

    def create_admin(
        self, email: str, password: str, role: Role | str, actor: Principal | str | None
    ) -> Admin:
        """`actor`: the admin acting. A Principal must have the admin role; an email means the
        caller checked the role; None is the server's operator (the CLI on the server)."""
        _require_admin(actor)
        address = _valid_email(email)
        _check_password(password)
        try:
            wanted = Role(role)
        except ValueError:
            raise InvalidInput(
                f"role must be admin, maintainer or observer, not {str(role)[:40]!r}", field="role"
            ) from None
        with self._slots.hold():  # slow on purpose: outside the transaction
            password_hash = self._hasher.hash(password)
        now = self._clock()
        with self._storage.transaction() as tx:
            admin = tx.admins.create(address, password_hash, wanted, at=now)
            tx.activities.add(
                ACTIVITY_CREATED_ADMIN,
                at=now,
                actor=_email(actor),
                details={"admin_id": admin.id, "email": admin.email, "role": admin.role.value},
            )
        return admin

    def list_admins(self) -> list[Admin]:
        """By email."""
        with self._storage.transaction() as tx:
            return tx.admins.list()

    def get_admin(self, admin_id: int) -> Admin:
        with self._storage.transaction() as tx:
            admin = tx.admins.get(admin_id)
        if admin is None:
            raise _no_admin(admin_id)
        return admin

    def find_admin(self, email: str) -> Admin | None:
        with self._storage.transaction() as tx:
            return tx.admins.find_by_email(email)

    def delete_admin(self, admin_id: int, actor: Principal | str | None) -> Admin:
        """Delete the account and its tokens. Refuses the last admin: without one, nobody could
        manage accounts or settings again. `actor` as for create_admin."""
        _require_admin(actor)
        now = self._clock()
        with self._storage.transaction() as tx:
            admin = tx.admins.get(admin_id)
            if admin is None:
                raise _no_admin(admin_id)
            # Locked: two admins deleting each other at once cannot both succeed.
            if admin.role is Role.ADMIN and tx.admins.count(Role.ADMIN, lock=True) <= 1:
                raise Conflict(
                    f"{admin.email} is the last admin, and winmdm needs one to manage accounts and "
                    "settings. Make another admin first, then delete this one."
                )
            tx.admins.delete(admin.id)
            tx.activities.add(
                ACTIVITY_DELETED_ADMIN,
                at=now,
                actor=_email(actor),
                details={"admin_id": admin.id, "email": admin.email, "role": admin.role.value},
            )
        return admin

    # -- signing in -----------------------------------------------------------------------------

    def login(self, email: str, password: str, client: str | None) -> IssuedToken:
        """A 24-hour session token for the right email and password.

        A wrong email and a wrong password fail alike, and take about as long (an unknown email
        is checked against a dummy hash). Counted before the password is looked at
        (services/sign_in.py): too many failures for the email from this address, or from this
        address, within the window: RateLimited.
        """
        address = (email if isinstance(email, str) else "").strip().lower()[:_MAX_EMAIL]
        secret = password if isinstance(password, str) else ""
        where = (client or "").strip()[:100] or None
        attempt = self._limit.admit(address, where)
        try:
            with self._slots.hold():
                with self._storage.transaction() as tx:
                    found = tx.admins.credentials(address) if address else None
                valid = self._verify(found[1] if found else None, secret)
                rehashed = self._rehash(found[1], secret) if valid and found else None
        except RateLimited:
            self._limit.withdraw(attempt)
            raise
        if not valid or found is None:
            self._limit.failed()
            raise AuthenticationFailed(MESSAGE_WRONG_CREDENTIALS)
        admin = found[0]
        now = self._clock()
        with self._storage.transaction() as tx:
            self._limit.succeeded(tx, address, where)
            if rehashed is not None:
                tx.admins.set_password_hash(admin.id, rehashed)
            # Kept a while after expiry, so a late request hears "expired" rather than "not valid".
            tx.admin_tokens.purge_expired(now - EXPIRED_KEPT)
            return self._issue(
                tx, admin, AdminTokenKind.SESSION, "sign-in", now, now + self._session_lifetime
            )

    def _verify(self, stored_hash: str | None, password: str) -> bool:
        if not password or len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(stored_hash or self._dummy_hash, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def _rehash(self, stored_hash: str, password: str) -> str | None:
        """A new hash when the stored one was made with weaker parameters than today's."""
        try:
            needs = self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            needs = True
        return self._hasher.hash(password) if needs else None

    @functools.cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))

    def authenticate(self, token: str) -> Principal:
        """Who a session or API token acts for. AuthenticationFailed for an unknown, revoked or
        expired token (or one whose admin was deleted)."""
        if (
            not isinstance(token, str)
            or len(token) > _MAX_TOKEN
            or not token.startswith(tuple(_PREFIXES.values()))
        ):
            raise AuthenticationFailed(MESSAGE_TOKEN_UNKNOWN)
        now = self._clock()
        with self._storage.transaction() as tx:
            found = tx.admin_tokens.find(token_hash(token))
            if found is None:
                raise AuthenticationFailed(MESSAGE_TOKEN_UNKNOWN)
            record, admin = found
            if record.revoked_at is not None:
                raise AuthenticationFailed(MESSAGE_TOKEN_REVOKED)
            if record.expires_at is not None and now >= record.expires_at:
                raise AuthenticationFailed(MESSAGE_SESSION_EXPIRED.format(at=record.expires_at))
            if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
                tx.admin_tokens.touch(record.id, now)
        return Principal(admin=admin, token_id=record.id, token_kind=record.kind)

    def logout(self, token_id: int) -> None:
        """Revoke the token a request came with (the session ends at once on every instance)."""
        with self._storage.transaction() as tx:
            tx.admin_tokens.revoke(token_id, self._clock())

    # -- API tokens -----------------------------------------------------------------------------

    def create_api_token(
        self, admin_id: int, name: str, *, actor: Principal | str | None = None
    ) -> IssuedToken:
        """A token for automation: no expiry, acts with its owner's role, shown once. The
        activity names `actor`, by default the owner."""
        label = name.strip() if isinstance(name, str) else ""
        if not label or len(label) > MAX_TOKEN_NAME or not label.isprintable():
            raise InvalidInput(
                f"name must be 1 to {MAX_TOKEN_NAME} printable characters, e.g. the script or "
                "machine that uses the token",
                field="name",
            )
        now = self._clock()
        with self._storage.transaction() as tx:
            admin = tx.admins.get(admin_id)
            if admin is None:
                raise _no_admin(admin_id)
            issued = self._issue(tx, admin, AdminTokenKind.API, label, now, None)
            tx.activities.add(
                ACTIVITY_CREATED_API_TOKEN,
                at=now,
                actor=_email(actor) or admin.email,
                details={"token_id": issued.token_id, "name": label, "owner": admin.email},
            )
        return issued

    def list_tokens(
        self, admin_id: int | None, *, kind: AdminTokenKind | None = None, active_only: bool = True
    ) -> list[AdminToken]:
        """The admin's tokens (None: everyone's), oldest first; only usable ones unless
        `active_only` is False. Never the tokens themselves."""
        now = self._clock()
        with self._storage.transaction() as tx:
            tokens = tx.admin_tokens.list(admin_id, kind=kind)
        return [t for t in tokens if t.active_at(now)] if active_only else tokens

    def revoke_token(self, token_id: int, by: Principal) -> AdminToken:
        """Anyone may revoke their own tokens; an admin anyone's. Revoking twice is no error."""
        now = self._clock()
        with self._storage.transaction() as tx:
            record = tx.admin_tokens.get(token_id)
            if record is None:
                raise NotFound(f"token {token_id} does not exist; list the tokens to find its id")
            if record.admin_id != by.admin.id and not by.allows(Role.ADMIN):
                raise AuthorizationFailed(
                    f"token {token_id} belongs to another admin; only its owner or an admin may revoke it"
                )
            if not tx.admin_tokens.revoke(record.id, now):
                return record
            owner = by.admin if record.admin_id == by.admin.id else tx.admins.get(record.admin_id)
            if record.kind is AdminTokenKind.API:
                tx.activities.add(
                    ACTIVITY_REVOKED_API_TOKEN,
                    at=now,
                    actor=by.admin.email,
                    details={
                        "token_id": record.id,
                        "name": record.name,
                        "owner": owner.email if owner else None,
                    },
                )
        return replace(record, revoked_at=now)

    def _issue(
        self,
        tx: Transaction,
        admin: Admin,
        kind: AdminTokenKind,
        name: str,
        now: datetime,
        expires_at: datetime | None,
    ) -> IssuedToken:
        token = _PREFIXES[kind] + secrets.token_urlsafe(32)
        record = tx.admin_tokens.add(admin.id, token_hash(token), kind, name, at=now, expires_at=expires_at)
        return IssuedToken(token=token, token_id=record.id, admin=admin, expires_at=expires_at)


def _email(actor: Principal | str | None) -> str | None:
    return actor.admin.email if isinstance(actor, Principal) else actor


def _require_admin(actor: Principal | str | None) -> None:
    if isinstance(actor, Principal):
        actor.require(Role.ADMIN)


def _no_admin(admin_id: int) -> NotFound:
    return NotFound(f"admin {admin_id} does not exist; it may have been deleted")


def _valid_email(email: object) -> str:
    address = email.strip().lower() if isinstance(email, str) else ""
    if len(address) > _MAX_EMAIL or not _EMAIL.fullmatch(address):
        shown = repr(str(email)[:60]) if email else "empty"
        raise InvalidInput(f"email must look like name@example.com; it is {shown}", field="email")
    return address


def _check_password(password: object) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        length = len(password) if isinstance(password, str) else 0
        raise InvalidInput(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters long (it has {length}); "
            "use a longer passphrase, e.g. four random words",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password must be at most {MAX_PASSWORD_LENGTH} characters long", field="password"
        )
