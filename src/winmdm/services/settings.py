"""The server's MDM settings (`mdm.*`), their rules and their effects (design.md §1 "settings").

The API, the CLI, GitOps and the UI all change settings through :meth:`SettingsService.update`
and show its errors as they are: the message constants below are the one wording of each rule.

Defaults, for a fresh database and for one upgraded from revision 0003 alike (revision 0004
stores the first three):

- ``windows_enabled_and_configured``: true. The server is configured by its WINMDM_* settings;
  turned off, discovery, policy requests and new enrollments are refused (renewals still work).
- ``windows_migration_enabled``: false (Premium).
- ``enable_turn_on_windows_mdm_manually``: false, the **Automatic** end-user experience (Premium).
- ``end_user_authentication``: No team's end-user authentication on the Entra terms page. Until
  an admin sets it, it follows WINMDM_END_USER_AUTH; once set, the stored value wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from winmdm.domain.admin import Principal, Role
from winmdm.errors import InvalidInput, PremiumRequired
from winmdm.services.license import License
from winmdm.storage.protocols import Storage

__all__ = [
    "ACTIVITY_TYPES",
    "DEFAULTS",
    "KEYS",
    "MESSAGE_END_USER_AUTH_NEEDS_SIGN_IN",
    "MESSAGE_MANUAL_WHILE_MIGRATION",
    "MESSAGE_MIGRATION_WHILE_MANUAL",
    "MESSAGE_NOT_AN_OBJECT",
    "MESSAGE_NOT_BOOLEAN",
    "MESSAGE_PREMIUM_REQUIRED",
    "MESSAGE_UNKNOWN_SETTING",
    "MESSAGE_WINDOWS_MDM_OFF",
    "PREMIUM_KEYS",
    "MDMSettings",
    "SettingsService",
]

WINDOWS_ENABLED = "windows_enabled_and_configured"
MIGRATION = "windows_migration_enabled"
MANUAL = "enable_turn_on_windows_mdm_manually"
END_USER_AUTH = "end_user_authentication"
KEYS = (WINDOWS_ENABLED, MIGRATION, MANUAL, END_USER_AUTH)
PREMIUM_KEYS = frozenset({MIGRATION, MANUAL})
DEFAULTS: dict[str, bool] = {WINDOWS_ENABLED: True, MIGRATION: False, MANUAL: False}
"""END_USER_AUTH's default is the server's WINMDM_END_USER_AUTH (SettingsService's argument)."""

# -- the one wording of each rule (shown as is by the API, the CLI, GitOps and the UI) ------------
# `{key}` is a setting's name without "mdm.".
MESSAGE_PREMIUM_REQUIRED = (
    "mdm.{key} is a Premium feature and this server runs winmdm Free. Set WINMDM_LICENSE_KEY to your "
    "Premium license key and restart winmdm, or leave mdm.{key} off."
)
MESSAGE_MANUAL_WHILE_MIGRATION = (
    "mdm.enable_turn_on_windows_mdm_manually cannot be turned on while mdm.windows_migration_enabled "
    "is on (migration needs the Automatic end-user experience). Turn off mdm.windows_migration_enabled "
    "first, then turn on mdm.enable_turn_on_windows_mdm_manually."
)
MESSAGE_MIGRATION_WHILE_MANUAL = (
    "mdm.windows_migration_enabled cannot be turned on while mdm.enable_turn_on_windows_mdm_manually "
    "is on (end users turn on MDM themselves). Turn off mdm.enable_turn_on_windows_mdm_manually first, "
    "then turn on mdm.windows_migration_enabled."
)
MESSAGE_UNKNOWN_SETTING = (
    "mdm.{key} is not a setting of winmdm. The settings are mdm.windows_enabled_and_configured, "
    "mdm.windows_migration_enabled, mdm.enable_turn_on_windows_mdm_manually and "
    "mdm.end_user_authentication."
)
MESSAGE_NOT_BOOLEAN = "mdm.{key} must be true or false."
MESSAGE_NOT_AN_OBJECT = (
    'mdm must be an object of settings, for example {"windows_enabled_and_configured": true}.'
)
MESSAGE_END_USER_AUTH_NEEDS_SIGN_IN = (
    "mdm.end_user_authentication signs end users in with your identity provider, and none is set "
    "up. Set WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and WINMDM_OIDC_CLIENT_SECRET, restart "
    "winmdm, then turn on mdm.end_user_authentication."
)
MESSAGE_WINDOWS_MDM_OFF = (
    "Windows MDM is turned off on this server, so this PC cannot be enrolled now. Contact your IT "
    "administrator."
)
"""What Windows shows the user (the SOAP fault's text) while windows_enabled_and_configured is off."""

# Activity written for each change: (turned on, turned off).
ACTIVITY_TYPES: dict[str, tuple[str, str]] = {
    WINDOWS_ENABLED: ("enabled_windows_mdm", "disabled_windows_mdm"),
    MIGRATION: ("enabled_windows_mdm_migration", "disabled_windows_mdm_migration"),
    MANUAL: ("enabled_windows_mdm_manual_enrollment", "disabled_windows_mdm_manual_enrollment"),
    END_USER_AUTH: ("enabled_end_user_authentication", "disabled_end_user_authentication"),
}


# How long windows_enabled() trusts what it read (seconds).
ENABLED_TTL = 1.0


def field(key: str) -> str:
    """The API field of a setting."""
    return f"mdm.{key}"


@dataclass(frozen=True, slots=True)
class MDMSettings:
    windows_enabled_and_configured: bool = True
    windows_migration_enabled: bool = False
    enable_turn_on_windows_mdm_manually: bool = False  # False: the Automatic end-user experience
    end_user_authentication: bool = False  # No team's

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


class SettingsService:
    """Reads and changes the MDM settings; enforces the tier and the rules between settings."""

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        license: License,
        *,
        end_user_authentication_default: bool = False,
        sign_in_configured: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`end_user_authentication_default`: WINMDM_END_USER_AUTH, until an admin sets the
        setting. `sign_in_configured`: an OIDC identity provider is set up (WINMDM_OIDC_*), which
        end-user authentication needs."""
        self._storage = storage
        self._clock = clock
        self._license = license
        self._end_user_default = end_user_authentication_default
        self._sign_in_configured = sign_in_configured
        self._monotonic = monotonic
        self._enabled: tuple[float, bool] | None = None  # (read at, windows_enabled)

    def license(self) -> License:
        """The license as it stands now (a Premium license past its expiry is Free)."""
        return self._license.at(self._clock())

    def get(self) -> MDMSettings:
        with self._storage.transaction() as tx:
            return self._settings(tx.settings.read())

    def windows_enabled(self) -> bool:
        """Whether Windows PCs may discover and enroll now.

        Each of an enrollment's three messages asks, so the answer is read from the database at
        most once per ENABLED_TTL seconds: this instance's own change counts at once, another
        instance's within that time."""
        now = self._monotonic()
        cached = self._enabled
        if cached is not None and now - cached[0] < ENABLED_TTL:
            return cached[1]
        enabled = self.get().windows_enabled_and_configured
        self._enabled = (now, enabled)
        return enabled

    def end_user_authentication(self) -> bool:
        """No team's end-user authentication, as the Entra terms page needs it now."""
        return self.get().end_user_authentication

    def update(self, changes: Mapping[str, Any], actor: Principal | str | None) -> MDMSettings:
        """Apply `changes` (settings by name, without "mdm.") and return the settings after.

        All or nothing: InvalidInput (the field names the setting) or PremiumRequired for the
        first wrong change, and nothing is changed. A change to the value a setting already has
        is no change (no activity). `actor` is the admin acting: a Principal must have the admin
        role; an email means the caller checked the role; None is the server's operator.
        """
        if isinstance(actor, Principal):
            actor.require(Role.ADMIN)
        wanted = self._allowed(changes)
        now = self._clock()
        with self._storage.transaction() as tx:
            # Locked: two admins turning on migration and manual at once cannot both succeed.
            stored = tx.settings.read(lock=True)
            current = self._settings(stored)
            after = _exclusive(current, wanted)
            before = current.as_dict()
            changed = {key: value for key, value in after.as_dict().items() if before[key] != value}
            if not changed and all(key in stored for key in wanted):
                return after
            # Every key asked for is stored, changed or not: a value an admin set wins over
            # WINMDM_END_USER_AUTH from then on.
            tx.settings.write(wanted, at=now)
            self._enabled = None
            email = actor.admin.email if isinstance(actor, Principal) else actor
            for key in KEYS:
                if key in changed:
                    on, off = ACTIVITY_TYPES[key]
                    details: dict[str, Any] = {"setting": field(key), "value": changed[key]}
                    if key == END_USER_AUTH:
                        details |= {"team_id": None, "team_name": None}  # No team
                    tx.activities.add(on if changed[key] else off, at=now, actor=email, details=details)
        return after

    def check(self, changes: Mapping[str, Any]) -> MDMSettings:
        """What `update` would raise for `changes`, without changing anything (GitOps dry runs);
        returns the settings the change would give."""
        wanted = self._allowed(changes)
        return _exclusive(self.get(), wanted)

    def _allowed(self, changes: Mapping[str, Any]) -> dict[str, bool]:
        """Shape, tier and sign-in rules: everything that does not depend on the stored values."""
        wanted = self._checked(changes)
        license = self.license()
        for key in KEYS:
            if key in PREMIUM_KEYS and wanted.get(key) is True and not license.premium:
                raise PremiumRequired(MESSAGE_PREMIUM_REQUIRED.format(key=key), field=field(key))
        if wanted.get(END_USER_AUTH) is True and not self._sign_in_configured:
            raise InvalidInput(MESSAGE_END_USER_AUTH_NEEDS_SIGN_IN, field=field(END_USER_AUTH))
        return wanted

    def _checked(self, changes: Mapping[str, Any]) -> dict[str, bool]:
        if not isinstance(changes, Mapping):
            raise InvalidInput(MESSAGE_NOT_AN_OBJECT, field="mdm")
        wanted: dict[str, bool] = {}
        for key, value in changes.items():
            shown = str(key)[:64]
            if key not in KEYS:
                raise InvalidInput(MESSAGE_UNKNOWN_SETTING.format(key=shown), field=field(shown))
            if not isinstance(value, bool):
                raise InvalidInput(MESSAGE_NOT_BOOLEAN.format(key=key), field=field(key))
            wanted[key] = value
        return wanted

    def _settings(self, stored: Mapping[str, Any]) -> MDMSettings:
        def value(key: str, default: bool) -> bool:
            found = stored.get(key)
            return found if isinstance(found, bool) else default

        return MDMSettings(
            windows_enabled_and_configured=value(WINDOWS_ENABLED, DEFAULTS[WINDOWS_ENABLED]),
            windows_migration_enabled=value(MIGRATION, DEFAULTS[MIGRATION]),
            enable_turn_on_windows_mdm_manually=value(MANUAL, DEFAULTS[MANUAL]),
            end_user_authentication=value(END_USER_AUTH, self._end_user_default),
        )


def _exclusive(current: MDMSettings, wanted: Mapping[str, bool]) -> MDMSettings:
    """The settings after `wanted`; manual and migration are never both on (design.md §1), and
    the message names the setting to turn off first."""
    after = MDMSettings(**(current.as_dict() | dict(wanted)))
    if after.enable_turn_on_windows_mdm_manually and after.windows_migration_enabled:
        if wanted.get(MANUAL) is True:
            raise InvalidInput(MESSAGE_MANUAL_WHILE_MIGRATION, field=field(MANUAL))
        raise InvalidInput(MESSAGE_MIGRATION_WHILE_MANUAL, field=field(MIGRATION))
    return after
