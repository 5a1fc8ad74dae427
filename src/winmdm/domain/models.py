"""What winmdm knows about a device: its host record, enrollments and certificates."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from winmdm.domain.identity import EnrollmentKind


class MDMStatus(enum.StrEnum):
    """A host's MDM state (design.md §1).

    PENDING: enrolled, first management session not completed. ON: managed. OFF: unenrolled or
    never enrolled. Manual vs automatic is decided from the enrollment (issue 5).
    """

    PENDING = "pending"
    ON = "on"
    OFF = "off"


class EnrollmentType(enum.StrEnum):
    """MS-MDE2 ContextItem EnrollmentType: where the certificate goes and who owns the session."""

    FULL = "Full"  # user context, My/User (MDM-only, Entra-registered "work account")
    DEVICE = "Device"  # device context, My/System (Entra join, Autopilot)
    LITE = "Lite"  # legacy documented value, treated as user context

    @classmethod
    def parse(cls, value: str | None) -> EnrollmentType:
        """Case-insensitive; an absent value means Full, the MS-MDE2 default for user enrollment."""
        if not value:
            return cls.FULL
        for member in cls:
            if member.value.lower() == value.strip().lower():
                return member
        raise ValueError(f"unknown EnrollmentType {value!r}")

    @property
    def device_context(self) -> bool:
        return self is EnrollmentType.DEVICE


class TokenKind(enum.StrEnum):
    """Which credential authorised an enrollment."""

    ENTRA_JWT = "entra_jwt"  # urn:ietf:params:oauth:token-type:jwt
    RENEWAL = "renewal"  # PKCS#7 signed by the current device certificate (ROBO)
    ENROLLMENT_TOKEN = "enrollment_token"  # winmdm's own sign-in page token
    BULK_SECRET = "bulk_secret"  # a provisioning package's secret (WS-Security UsernameToken)


class CertificateStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Host:
    """One physical Windows PC, however many times it enrolled."""

    id: int
    uuid: str
    display_name: str
    hw_dev_id: str | None
    device_id: str | None
    serial: str | None
    team_id: int | None  # None is "No team"
    mdm_status: MDMStatus
    os_version: str | None
    os_edition: str | None
    idp_username: str | None
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None = None
    enrollment_kind: EnrollmentKind | None = None  # of the current enrollment
    # The Entra device id (token claim ``deviceid``) of the latest Entra enrollment: how the
    # terms-of-use page, which sees no hardware id, recognises a PC it knows.
    entra_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Enrollment:
    """One accepted RequestSecurityToken, with everything Windows said about itself."""

    id: int
    host_id: int
    device_id: str
    hw_dev_id: str | None
    enrollment_type: EnrollmentType
    not_in_oobe: bool | None
    ux_initiated: bool | None
    device_name: str | None
    os_version: str | None
    os_edition: str | None
    domain_name: str | None
    upn: str | None
    token_kind: TokenKind
    # Every ContextItem in the order sent (names may repeat: MAC, IMEI).
    context: tuple[tuple[str, str], ...]
    # OMA-DM digest credentials from the provisioning document (protocol.md decision 4).
    dm_username: str
    dm_password_digest: str  # b64(md5("name:secret")): enough to check Cred, not to replay it
    dm_server_secret: str  # what the server proves to the client (AAUTHLEVEL CLIENT)
    dm_nonce: str  # base64 nonce the client uses for its next Cred
    active: bool
    created_at: datetime
    enrollment_kind: EnrollmentKind | None = None
    end_user_username: str | None = None  # who signed in on winmdm's page, if anyone
    # The nonce before dm_nonce: only the one-shot unenroll alert may still use it.
    dm_previous_nonce: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceCertificate:
    """A client certificate winmdm issued from a device's CSR."""

    serial: str  # lower-case hex, unique
    host_id: int
    enrollment_id: int
    thumbprint: str  # upper-case hex SHA-1 of the DER, as the provisioning document names it
    subject: str  # the CN winmdm chose
    not_before: datetime
    not_after: datetime
    der: bytes
    status: CertificateStatus
    replaces_serial: str | None = None
    first_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NewHost:
    """What is known of a host when it is first seen."""

    uuid: str
    display_name: str
    hw_dev_id: str | None
    device_id: str | None
    os_version: str | None
    os_edition: str | None
    idp_username: str | None
    created_at: datetime
    team_id: int | None = None
    serial: str | None = None
    mdm_status: MDMStatus = MDMStatus.PENDING
    enrollment_kind: EnrollmentKind | None = None
    entra_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewEnrollment:
    host_id: int
    device_id: str
    hw_dev_id: str | None
    enrollment_type: EnrollmentType
    not_in_oobe: bool | None
    ux_initiated: bool | None
    device_name: str | None
    os_version: str | None
    os_edition: str | None
    domain_name: str | None
    upn: str | None
    token_kind: TokenKind
    context: tuple[tuple[str, str], ...]
    dm_username: str
    dm_password_digest: str
    dm_server_secret: str
    dm_nonce: str
    created_at: datetime
    extra: dict[str, str] = field(default_factory=dict)
    enrollment_kind: EnrollmentKind | None = None
    end_user_username: str | None = None
