"""Who and what an enrollment is: teams, bulk-enrollment secrets, manual vs automatic."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class EnrollmentKind(enum.StrEnum):
    """design.md §1: MANUAL when MDM was turned on from a user session (end users can turn it
    off); AUTOMATIC when the organisation turned it on with no user choice."""

    MANUAL = "manual"
    AUTOMATIC = "automatic"


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    name: str
    end_user_auth: bool  # the Entra terms page also signs the user in with the IdP
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EnrollmentSecret:
    """A bulk-enrollment secret (stored as its SHA-256); hosts using it land in its team."""

    id: int
    team_id: int | None  # None is No team
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
