"""Bulk enrollment (a provisioning package made with Windows Configuration Designer): per-team
enrollment secrets. The package's UsernameToken carries the secret (MS-MDE2 OnPremise); the host
lands in the secret's team as On (automatic). Secrets are stored as their SHA-256 and shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from winmdm.domain.identity import EnrollmentSecret
from winmdm.errors import AuthenticationFailed, NotFound
from winmdm.services.endpoints import Endpoints
from winmdm.storage.protocols import Storage, Transaction

# The UPN a bulk package enrolls with: its local part tells discovery to answer OnPremise.
BULK_LOCAL_PART = "winmdm-bulk"


def bulk_upn(server_host: str) -> str:
    return f"{BULK_LOCAL_PART}@{server_host}"


def is_bulk_upn(email: str) -> bool:
    return email.strip().lower().partition("@")[0] == BULK_LOCAL_PART


def secret_hash(secret: str) -> str:
    """Secrets are 256-bit random values: a plain SHA-256 is enough to look them up safely."""
    return hashlib.sha256(secret.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSecret:
    secret: str  # shown once, never stored
    record: EnrollmentSecret


class EnrollmentSecrets:
    def __init__(
        self,
        *,
        storage: Storage,
        clock: Callable[[], datetime],
        token: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._token = token

    def create(self, team_id: int | None, *, actor: str | None = None) -> NewSecret:
        """A new secret for the team (None: No team); the team's other secrets keep working."""
        with self._storage.transaction() as tx:
            name = self._check_team(tx, team_id)
            created = self._create(tx, team_id)
            self._record(tx, "created_enrollment_secret", actor, team_id, name, secret_id=created.record.id)
            return created

    def rotate(self, team_id: int | None, *, actor: str | None = None) -> NewSecret:
        """A new secret for the team; the team's previous secrets stop working now."""
        now = self._clock()
        with self._storage.transaction() as tx:
            name = self._check_team(tx, team_id)
            revoked = []
            for old in tx.enrollment_secrets.list(team_id):
                if old.revoked_at is None and tx.enrollment_secrets.revoke(old.id, now):
                    revoked.append(old.id)
            created = self._create(tx, team_id)
            self._record(
                tx,
                "rotated_enrollment_secrets",
                actor,
                team_id,
                name,
                secret_id=created.record.id,
                revoked_secret_ids=revoked,
            )
            return created

    def revoke(self, team_id: int | None, secret_id: int, *, actor: str | None = None) -> bool:
        """Stop one of the team's secrets; False when it was already revoked. NotFound when the
        team has no secret with this id."""
        now = self._clock()
        with self._storage.transaction() as tx:
            name = self._check_team(tx, team_id)
            if not any(s.id == secret_id for s in tx.enrollment_secrets.list(team_id)):
                raise NotFound(f'"{name}" has no enrollment secret with id {secret_id}')
            if not tx.enrollment_secrets.revoke(secret_id, now):
                return False
            self._record(tx, "revoked_enrollment_secret", actor, team_id, name, secret_id=secret_id)
            return True

    def list(self, team_id: int | None) -> list[EnrollmentSecret]:
        with self._storage.transaction() as tx:
            self._check_team(tx, team_id)
            return tx.enrollment_secrets.list(team_id)

    def verify(self, tx: Transaction, username: str, password: str) -> EnrollmentSecret:
        """The active secret a UsernameToken carries, inside the enrollment's transaction."""
        if not is_bulk_upn(username):
            raise AuthenticationFailed(
                "username and password enrollment is only for provisioning packages made by winmdm; "
                "ask your administrator how to enroll this PC"
            )
        found = tx.enrollment_secrets.find_active(secret_hash(password))
        if found is None or not hmac.compare_digest(found.secret_hash, secret_hash(password)):
            raise AuthenticationFailed(
                "the provisioning package's enrollment secret is unknown or was rotated; "
                "ask your administrator for a new package"
            )
        return found

    def _create(self, tx: Transaction, team_id: int | None) -> NewSecret:
        secret = self._token(32)
        record = tx.enrollment_secrets.create(team_id, secret_hash(secret), at=self._clock())
        return NewSecret(secret, record)

    def _record(
        self, tx: Transaction, type: str, actor: str | None, team_id: int | None, name: str, **details: object
    ) -> None:
        """An activity for an admin's change (design.md §1); `name` is the team's, or No team."""
        tx.activities.add(
            type, at=self._clock(), actor=actor, details={"team_id": team_id, "team_name": name, **details}
        )

    @staticmethod
    def _check_team(tx: Transaction, team_id: int | None) -> str:
        """The team's name ("No team" for None); NotFound for an unknown team."""
        if team_id is None:
            return "No team"
        team = tx.teams.get(team_id)
        if team is None:
            raise NotFound(f"no team with id {team_id}")
        return team.name


def wcd_customizations(
    *, endpoints: Endpoints, server_host: str, secret: str, package_name: str, package_id: str | None = None
) -> bytes:
    """The Windows Configuration Designer settings of a bulk-enrollment package:
    Workplace/Enrollments/<UPN> with AuthPolicy OnPremise, the discovery, policy and enrollment
    URLs, and the secret (WCD "Runtime settings > Workplace > Enrollments")."""
    # "WindowsCustomizatons" (sic) is the root element Microsoft's tools write and read.
    root = etree.Element("WindowsCustomizatons")
    config = etree.SubElement(root, f"{{{_PACKAGE_NS}}}PackageConfig", nsmap={None: _PACKAGE_NS})
    for name, value in (
        ("ID", "{" + (package_id or str(uuid.uuid4())) + "}"),
        ("Name", package_name),
        ("Version", "1.0"),
        ("OwnerType", "ITAdmin"),
        ("Rank", "0"),
    ):
        etree.SubElement(config, f"{{{_PACKAGE_NS}}}{name}").text = value
    settings = etree.SubElement(root, f"{{{_SETTINGS_NS}}}Settings", nsmap={None: _SETTINGS_NS})
    node = settings
    for name in ("Customizations", "Common", "Workplace", "Enrollments"):
        node = etree.SubElement(node, f"{{{_SETTINGS_NS}}}{name}")
    upn = etree.SubElement(node, f"{{{_SETTINGS_NS}}}UPN", UPN=bulk_upn(server_host))
    for name, value in (
        ("AuthPolicy", "OnPremise"),
        ("DiscoveryServiceFullUrl", endpoints.discovery),
        ("EnrollmentServiceFullUrl", endpoints.enrollment),
        ("PolicyServiceFullUrl", endpoints.policy),
        ("Secret", secret),
    ):
        etree.SubElement(upn, f"{{{_SETTINGS_NS}}}{name}").text = value
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


_PACKAGE_NS = "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"
_SETTINGS_NS = "urn:schemas-microsoft-com:windows-provisioning"
