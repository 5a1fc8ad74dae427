"""The enrollment rules: discovery answer, policy terms, issuing and renewing device certificates.

MS-MDE2 §3.1-3.4. Takes its stores, CA, clock and randomness as arguments (design.md §3).
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from winmdm.domain.identity import entra_device_id
from winmdm.domain.models import (
    CertificateStatus,
    DeviceCertificate,
    Enrollment,
    EnrollmentType,
    Host,
    MDMStatus,
    NewEnrollment,
    NewHost,
    TokenKind,
)
from winmdm.errors import AuthenticationFailed, AuthorizationFailed, MalformedMessage
from winmdm.pki.ca import DeviceCA, der, random_serial, thumbprint_sha1
from winmdm.pki.csr import parse_csr
from winmdm.pki.renewal import parse_renewal_request
from winmdm.protocol import digest
from winmdm.protocol.discovery import AuthPolicy, DiscoverRequest, DiscoverResult, negotiate_version
from winmdm.protocol.provisioning import (
    DigestCredentials,
    EnrollmentDocument,
    PollSchedule,
    RenewalTerms,
    build_enrollment_document,
    build_renewal_document,
)
from winmdm.protocol.soap import Security
from winmdm.protocol.wstep import RequestSecurityToken, RequestType
from winmdm.protocol.xcep import PolicyTerms
from winmdm.services import host_identity, host_lifecycle
from winmdm.services.authentication import Authenticator, Identity
from winmdm.services.bulk import EnrollmentSecrets, is_bulk_upn
from winmdm.services.deep_link import LINK_TOKEN_PARAMETER
from winmdm.services.endpoints import Endpoints
from winmdm.services.enrollment_kind import enrollment_kind
from winmdm.services.settings import MESSAGE_WINDOWS_MDM_OFF, SettingsService
from winmdm.services.terms import TermsOfUse
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.enrollment")

# Highest EnrollmentVersion winmdm answers; clients asking more get this (MS-MDE2 §3.1.4.1.1.2).
MAX_ENROLLMENT_VERSION = Decimal("5.0")


@dataclass(frozen=True, slots=True)
class EnrollmentSettings:
    provider_id: str = "winmdm"
    server_name: str = "winmdm"
    poll: PollSchedule = field(default_factory=PollSchedule)
    certificate_lifetime: timedelta = timedelta(days=365)
    renewal: RenewalTerms | None = field(default_factory=RenewalTerms)
    min_key_size: int = 2048
    # A host still checking in keeps its identity this long against PCs reporting its ids.
    merge_after: timedelta = host_identity.DEFAULT_MERGE_AFTER


@dataclass(frozen=True, slots=True)
class EnrollmentOutcome:
    document: bytes  # the WAP provisioning document
    host: Host
    enrollment: Enrollment
    certificate: DeviceCertificate
    created_host: bool


@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    document: bytes
    certificate: DeviceCertificate


class EnrollmentService:
    def __init__(
        self,
        *,
        storage: Storage,
        ca: DeviceCA,
        authenticator: Authenticator,
        endpoints: Endpoints,
        settings: EnrollmentSettings,
        clock: Callable[[], datetime],
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        serial_source: Callable[[], int] = random_serial,
        bulk: EnrollmentSecrets | None = None,
        terms: TermsOfUse | None = None,
        mdm_settings: SettingsService | None = None,
    ) -> None:
        """`mdm_settings`: the admins' settings (mdm.windows_enabled_and_configured); without
        it, Windows MDM is always on."""
        self._bulk = bulk or EnrollmentSecrets(storage=storage, clock=clock)
        self._mdm_settings = mdm_settings
        self._terms = terms
        self._storage = storage
        self._ca = ca
        self._auth = authenticator
        self._endpoints = endpoints
        self._settings = settings
        self._clock = clock
        self._random = random_bytes
        self._serial = serial_source
        self._root_der = der(ca.certificate)
        self._root_thumbprint = thumbprint_sha1(ca.certificate)

    # -- discovery (MS-MDE2 §3.1) ----------------------------------------------------------
    def discover(self, request: DiscoverRequest, *, link_token: str | None = None) -> DiscoverResult:
        """Federated when offered (the Entra paths and the sign-in page), else OnPremise.

        Entra sends its token whatever policy discovery named (protocol.md decision 3).
        """
        self._require_windows_mdm()
        offered = request.auth_policies
        if is_bulk_upn(request.email) and AuthPolicy.ON_PREMISE in offered:
            policy, auth_url = AuthPolicy.ON_PREMISE, None  # a provisioning package (bulk enrollment)
        elif AuthPolicy.FEDERATED in offered or not offered:
            policy, auth_url = AuthPolicy.FEDERATED, self._endpoints.authentication
        elif AuthPolicy.ON_PREMISE in offered:
            policy, auth_url = AuthPolicy.ON_PREMISE, None
        else:
            raise AuthorizationFailed(
                "this server enrolls with a work account (Federated); certificate "
                "authentication is not supported",
                detail_type="NotSupported",
            )
        if auth_url is not None and link_token:
            # A pre-authorized deep link: the sign-in page takes the token in place of signing in.
            auth_url += "?" + urlencode({LINK_TOKEN_PARAMETER: link_token})
        return DiscoverResult(
            auth_policy=policy,
            enrollment_version=negotiate_version(request.request_version, MAX_ENROLLMENT_VERSION),
            enrollment_url=self._endpoints.enrollment,
            policy_url=self._endpoints.policy,
            authentication_url=auth_url,
        )

    # -- policy (MS-XCEP, MS-MDE2 §3.3) -----------------------------------------------------
    def policy_terms(self, security: Security) -> PolicyTerms:
        """The caller must hold the credential it will enroll with (not consumed here)."""
        self._require_windows_mdm()
        self._identify(security, self._clock())
        lifetime = int(self._settings.certificate_lifetime.total_seconds())
        renewal_days = self._settings.renewal.renew_period_days if self._settings.renewal else 0
        return PolicyTerms(
            common_name=f"{self._settings.server_name} device",
            validity_seconds=lifetime,
            renewal_seconds=renewal_days * 86400,
            min_key_length=self._settings.min_key_size,
        )

    # -- enrollment (MS-WSTEP, MS-MDE2 §3.4) ------------------------------------------------
    def request_token(self, rst: RequestSecurityToken) -> EnrollmentOutcome | RenewalOutcome:
        """Answer an RST, enrolling or renewing: the outcome's document is the answer, the rest
        is for the caller's records (the enrollment path in the metrics, the host in the log)."""
        if rst.request_type is RequestType.RENEW or rst.is_pkcs7:
            return self.renew(rst)
        return self.enroll(rst)

    def enroll(self, rst: RequestSecurityToken) -> EnrollmentOutcome:
        self._require_windows_mdm()
        now = self._clock()
        identity, team_id = self._identify(rst.security, now)
        ctx = rst.context
        device_id = (ctx.get("DeviceID") or "").strip()
        if not device_id or len(device_id) > 64:
            raise MalformedMessage("the request's ContextItem DeviceID is missing or too long")
        try:
            enrollment_type = EnrollmentType.parse(ctx.get("EnrollmentType"))
        except ValueError as exc:
            raise MalformedMessage(str(exc)) from None
        csr = parse_csr(rst.request, min_key_size=self._settings.min_key_size)
        hw_dev_id = (ctx.get("HWDevID") or "").strip() or None
        device_name = (ctx.get("DeviceName") or "").strip() or None
        certificate = self._issue(csr.public_key, device_id, now)
        secret = self._token(24)
        credentials = DigestCredentials(
            client_name=device_id,
            client_secret=secret,
            server_secret=self._token(24),
            nonce=self._random(16),
            server_nonce=self._random(16),
        )
        kind = enrollment_kind(
            token_kind=identity.kind,
            not_in_oobe=ctx.get_bool("NotInOobe"),
            ux_initiated=ctx.get_bool("UXInitiated"),
            domain_name=ctx.get("DomainName"),
            bulk_aadj=ctx.get_bool("BulkAADJ"),
        )
        end_user = self._end_user(ctx.get("EnrollmentData"), identity, now)
        with self._storage.transaction() as tx:
            if identity.token_id is not None and not tx.enrollment_tokens.consume(
                identity.token_id, expires_at=identity.token_expires or now, at=now
            ):
                raise AuthenticationFailed(
                    "this sign-in was already used to enroll a device; start again from Settings"
                )
            if identity.token_id is not None:
                # Expired tokens are refused before their use is looked up (no leeway), so
                # their rows can go: the table holds only tokens still within their minutes.
                tx.enrollment_tokens.purge_expired(now)
            host, created = self._upsert_host(
                tx, identity, device_id, hw_dev_id, device_name, ctx, now, kind=kind, team_id=team_id
            )
            if not created:
                tx.enrollments.deactivate_for_host(host.id)
            enrollment = tx.enrollments.add(
                NewEnrollment(
                    host_id=host.id,
                    device_id=device_id,
                    hw_dev_id=hw_dev_id,
                    enrollment_type=enrollment_type,
                    not_in_oobe=ctx.get_bool("NotInOobe"),
                    ux_initiated=ctx.get_bool("UXInitiated"),
                    device_name=device_name,
                    os_version=ctx.get("OSVersion") or None,
                    os_edition=ctx.get("OSEdition") or None,
                    domain_name=ctx.get("DomainName") or None,
                    upn=identity.username,
                    token_kind=identity.kind,
                    context=ctx.items,
                    dm_username=credentials.client_name,
                    dm_password_digest=digest.credential_hash(credentials.client_name, secret),
                    dm_server_secret=credentials.server_secret,
                    dm_nonce=_b64(credentials.nonce),
                    created_at=now,
                    enrollment_kind=kind,
                    end_user_username=end_user,
                )
            )
            if not created:
                # Re-enrollment replaces the certificate: the previous ones stop working now.
                tx.certificates.revoke_active_for_host(host.id, now, "superseded by re-enrollment")
            record = tx.certificates.add(self._record(certificate, host.id, enrollment.id, device_id, None))
        log.info(
            "enrolled device %s as host %s (%s, %s, new host: %s)",
            device_id,
            host.id,
            enrollment_type.value,
            identity.kind.value,
            created,
        )
        document = build_enrollment_document(
            EnrollmentDocument(
                root_der=self._root_der,
                root_thumbprint=self._root_thumbprint,
                client_der=record.der,
                client_thumbprint=record.thumbprint,
                client_subject_cn=record.subject,
                device_context=enrollment_type.device_context,
                provider_id=self._settings.provider_id,
                server_name=self._settings.server_name,
                management_url=self._endpoints.management,
                credentials=credentials,
                poll=self._settings.poll,
                upn=identity.username,
                device_name=device_name,
                ent_dm_id=host.uuid,
                renewal=self._settings.renewal,
            )
        )
        return EnrollmentOutcome(document, host, enrollment, record, created)

    def _end_user(self, blob: str | None, identity: Identity, now: datetime) -> str | None:
        """Who signed in with the IdP on the Entra terms page (end-user authentication), from the
        OpaqueBlob Windows returns as ContextItem EnrollmentData. Stored beside the enrollment's
        UPN, never in its place. A missing, unreadable or expired blob, or one accepted by another
        user, only means no such username: Group Policy and device-credential enrollments have
        none, and the enrollment is never refused for it."""
        if not blob or self._terms is None:
            return None
        claims = self._terms.read_blob(blob, now)
        if claims is None:
            log.info(
                "enrollment: ContextItem EnrollmentData is not a current terms-of-use blob of this server"
            )
            return None
        end_user = claims.get("end_user_username")
        if end_user and (identity.username or "").casefold() != claims["upn"].casefold():
            log.warning(
                "enrollment: the terms-of-use blob was accepted by %s, not by the enrolling %s; "
                "its identity provider username is ignored",
                claims["upn"],
                identity.username or "(no user)",
            )
            return None
        return end_user

    def _upsert_host(
        self,
        tx: Transaction,
        identity: Identity,
        device_id: str,
        hw_dev_id: str | None,
        device_name: str | None,
        ctx,
        now: datetime,
        *,
        kind,
        team_id: int | None,
    ) -> tuple[Host, bool]:
        """A known host (same HWDevID or DeviceID) keeps its team; a new one lands in No team,
        or in the team of the bulk secret it enrolled with. Those ids are self-reported: a host
        still in use is never taken over by them (services/host_identity.py); the newcomer
        becomes a host of its own and the claim is recorded.

        An Entra enrollment also records the token's Entra device id on the host: the terms page
        of the device's next Entra enrollment recognises it by that id (services/end_user_auth.py).
        """
        entra_id = entra_device_id(identity.entra_device_id) if identity.kind is TokenKind.ENTRA_JWT else None
        known = tx.hosts.find_known(hw_dev_id=hw_dev_id, device_id=device_id)
        claimed: Host | None = None
        if known is not None and not (
            (entra_id is not None and entra_id == known.entra_device_id)  # Entra vouches: same PC
            or host_identity.may_supersede(tx, known, now, self._settings.merge_after)
        ):
            claimed, known = known, None
        if known is not None:
            host = tx.hosts.record_enrollment(
                known.id,
                display_name=device_name or known.display_name,
                hw_dev_id=hw_dev_id,
                device_id=device_id,
                os_version=ctx.get("OSVersion") or None,
                os_edition=ctx.get("OSEdition") or None,
                idp_username=identity.username,
                mdm_status=MDMStatus.PENDING,
                at=now,
                enrollment_kind=kind,
                entra_device_id=entra_id,
            )
            return host, False
        host = tx.hosts.create(
            NewHost(
                uuid=str(uuid.UUID(bytes=self._random(16), version=4)),
                display_name=device_name or device_id,
                hw_dev_id=hw_dev_id,
                device_id=device_id,
                os_version=ctx.get("OSVersion") or None,
                os_edition=ctx.get("OSEdition") or None,
                idp_username=identity.username,
                created_at=now,
                team_id=team_id,
                enrollment_kind=kind,
                entra_device_id=entra_id,
            )
        )
        host_lifecycle.created(tx, host, now, platform="windows")
        if claimed is not None:
            matched = "hw_dev_id" if hw_dev_id and claimed.hw_dev_id == hw_dev_id.strip() else "device_id"
            host_identity.record_conflict(tx, host, claimed, matched, now)
        return host, True

    def _identify(self, security: Security, now: datetime) -> tuple[Identity, int | None]:
        """Who is enrolling, and the team a bulk secret names (None otherwise)."""
        if security.username is not None and not security.tokens:
            with self._storage.transaction() as tx:
                secret = self._bulk.verify(tx, security.username.username, security.username.password)
            return Identity(kind=TokenKind.BULK_SECRET, username=None), secret.team_id
        return self._auth.authenticate(security, now), None

    # -- renewal (MS-WSTEP Renew, ROBO) ------------------------------------------------------
    def renew(self, rst: RequestSecurityToken) -> RenewalOutcome:
        """The PKCS#7 signed by the current certificate is the credential (protocol.md §3)."""
        now = self._clock()
        request = parse_renewal_request(rst.request, min_key_size=self._settings.min_key_size)
        signer = request.signer
        if not self._ca.issued_by_me(signer):
            raise AuthenticationFailed(
                "the renewal request is signed by a certificate this server did not issue"
            )
        serial = format(signer.serial_number, "x")
        with self._storage.transaction() as tx:
            current = tx.certificates.get(serial)
            if current is None or current.status is not CertificateStatus.ACTIVE:
                raise AuthenticationFailed(
                    f"certificate {serial} is revoked or unknown; enroll this PC again",
                )
            if current.not_after <= now:
                raise AuthorizationFailed(
                    f"certificate {serial} expired on {current.not_after:%Y-%m-%d}; enroll this PC again",
                    detail_type="NotEligibleToRenew",
                )
            enrollment = tx.enrollments.get(current.enrollment_id)
            certificate = self._issue(request.csr.public_key, current.subject, now)
            record = tx.certificates.add(
                self._record(
                    certificate, current.host_id, current.enrollment_id, current.subject, current.serial
                )
            )
        log.info("renewed certificate %s -> %s for host %s", current.serial, record.serial, record.host_id)
        device_context = enrollment is not None and enrollment.enrollment_type.device_context
        document = build_renewal_document(
            root_der=self._root_der,
            root_thumbprint=self._root_thumbprint,
            client_der=record.der,
            client_thumbprint=record.thumbprint,
            device_context=device_context,
        )
        return RenewalOutcome(document, record)

    # -- helpers -----------------------------------------------------------------------------
    def _require_windows_mdm(self) -> None:
        """Refuse while an admin has turned Windows MDM off (renewals are not asked: devices
        already enrolled keep their certificates). CustomServerError: Windows shows the text."""
        if self._mdm_settings is not None and not self._mdm_settings.windows_enabled():
            raise AuthorizationFailed(MESSAGE_WINDOWS_MDM_OFF, detail_type="CustomServerError")

    def _issue(self, public_key: rsa.RSAPublicKey, subject: str, now: datetime):
        return self._ca.issue_client_certificate(
            public_key,
            common_name=subject,
            serial=self._serial(),
            now=now,
            lifetime=self._settings.certificate_lifetime,
        )

    def _record(self, cert, host_id: int, enrollment_id: int, subject: str, replaces: str | None):
        return DeviceCertificate(
            serial=format(cert.serial_number, "x"),
            host_id=host_id,
            enrollment_id=enrollment_id,
            thumbprint=thumbprint_sha1(cert),
            subject=subject,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            der=der(cert),
            status=CertificateStatus.ACTIVE,
            replaces_serial=replaces,
        )

    def _token(self, n: int) -> str:
        return _b64(self._random(n)).rstrip("=").replace("+", "-").replace("/", "_")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
