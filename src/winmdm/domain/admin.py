"""Who administers winmdm: admin accounts, their roles, and the tokens they act with."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from winmdm.errors import AuthorizationFailed


class Role(enum.StrEnum):
    """What an admin may do (docs/api.md): observer < maintainer < admin."""

    OBSERVER = "observer"
    MAINTAINER = "maintainer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may (an admin may do what a maintainer may)."""
        return self.rank >= Role(needed).rank


_RANKS = {Role.OBSERVER: 0, Role.MAINTAINER: 1, Role.ADMIN: 2}


class AdminTokenKind(enum.StrEnum):
    SESSION = "session"  # from signing in; expires
    API = "api"  # for automation; lasts until revoked, acts with its owner's role


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    email: str  # stored lower-case: emails are compared case-insensitively
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AdminToken:
    """A session or API token; only its SHA-256 is stored, never the token."""

    id: int
    admin_id: int
    kind: AdminTokenKind
    name: str
    created_at: datetime
    expires_at: datetime | None = None  # None: never (API tokens)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Principal:
    """The admin a request acts as, and the token that proved it."""

    admin: Admin
    token_id: int
    token_kind: AdminTokenKind

    @property
    def role(self) -> Role:
        return self.admin.role

    def allows(self, needed: Role) -> bool:
        return self.admin.role.allows(needed)

    def require(self, needed: Role) -> None:
        """AuthorizationFailed unless this admin's role allows `needed`."""
        if not self.allows(needed):
            raise AuthorizationFailed(
                f"{self.admin.email} is {_article(self.admin.role)} {self.admin.role.value}; this needs "
                f"the {needed.value} role. Ask an admin to change your role or to do it for you."
            )


def _article(role: Role) -> str:
    return "an" if role.value[0] in "aeiou" else "a"
