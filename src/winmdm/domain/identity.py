"""Who and what an enrollment is: teams, bulk-enrollment secrets, manual vs automatic."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

# What firmware reports when the OEM never set a serial: many PCs share each of these, so none
# identifies a device. Compared stripped and case-insensitively.
_NOT_SERIALS = frozenset(
    value.casefold()
    for value in (
        "To be filled by O.E.M.",
        "Default string",
        "System Serial Number",
        "0",
        "None",
        "Not Specified",
        "123456789",
        "INVALID",
    )
)


def is_real_serial(serial: str | None) -> bool:
    """Whether a reported serial number can identify one device (None, blank and placeholder
    values cannot). The one list of non-identities: storage and services both ask here."""
    if serial is None:
        return False
    value = serial.strip().casefold()
    return bool(value) and value not in _NOT_SERIALS


_MAX_ENTRA_DEVICE_ID = 128


def entra_device_id(value: object) -> str | None:
    """An Entra token's ``deviceid`` as winmdm stores and compares it, or None.

    Entra device ids are GUIDs: one is spelled the canonical lower-case way, so the terms page's
    token and the enrollment's always agree. Anything else that is short, printable text is kept
    as sent (stripped); a missing, empty, over-long or non-text value identifies nothing.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_ENTRA_DEVICE_ID or not text.isprintable():
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


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
