"""How a host enrolled, in words an admin recognises: the path beside the manual/automatic rule.

It reads the same facts as `services.enrollment_kind.enrollment_kind`, in the same order, so a
path never contradicts the kind shown next to it (the table test checks both over every path).
The ms-device-enrollment: deep link opens the Settings device-management flow, so it reads as
that. A certificate renewal (MS-WSTEP Renew) never makes an enrollment: the host keeps the
path it enrolled by.
"""

from __future__ import annotations

from winmdm.domain.models import Enrollment, EnrollmentType, TokenKind
from winmdm.protocol import namespaces as ns
from winmdm.protocol.wstep import RequestSecurityToken, RequestType

BULK = "Provisioning package (bulk)"
BULK_ENTRA = "Provisioning package (bulk Entra join)"
RENEWAL = "Certificate renewal"
OOBE = "Entra join in OOBE / Autopilot"
GROUP_POLICY = "Group Policy"
PROGRAMMATIC = "Programmatic enrollment (agent)"
MDM_ONLY = "Settings: device management only"
ENTRA_JOIN_SETTINGS = "Entra join in Settings"
WORK_ACCOUNT = "Settings: work account (Entra)"


def enrollment_path(
    *,
    token_kind: TokenKind,
    enrollment_type: EnrollmentType,
    not_in_oobe: bool | None,
    ux_initiated: bool | None,
    domain_name: str | None,
    bulk_aadj: bool | None = None,
) -> str:
    """The label of one enrollment's path (MS-MDE2 §3.4.4 AdditionalContext and its credential)."""
    if token_kind is TokenKind.BULK_SECRET:
        return BULK
    if bulk_aadj:
        return BULK_ENTRA
    if token_kind is TokenKind.RENEWAL:
        return RENEWAL
    if not_in_oobe is False:
        return OOBE
    if ux_initiated is False:
        return GROUP_POLICY if (domain_name or "").strip() else PROGRAMMATIC
    if token_kind is TokenKind.ENROLLMENT_TOKEN:
        return MDM_ONLY
    if enrollment_type.device_context:
        return ENTRA_JOIN_SETTINGS
    return WORK_ACCOUNT


def path_of(enrollment: Enrollment) -> str:
    """`enrollment_path` of a stored enrollment; BulkAADJ is read from its ContextItems."""
    bulk_aadj = any(
        name.lower() == "bulkaadj" and value.strip().lower() in ("true", "1")
        for name, value in enrollment.context
    )
    return enrollment_path(
        token_kind=enrollment.token_kind,
        enrollment_type=enrollment.enrollment_type,
        not_in_oobe=enrollment.not_in_oobe,
        ux_initiated=enrollment.ux_initiated,
        domain_name=enrollment.domain_name,
        bulk_aadj=bulk_aadj,
    )


def claimed_path(rst: RequestSecurityToken) -> str:
    """The path an RST asks to enroll by, read from what it carries before any of it is
    verified: how a refused enrollment is counted in the metrics (one that succeeds is counted
    by `path_of` its record). The credential is told apart the way the enrollment service does:
    a UsernameToken alone is a bulk secret, a JWT an Entra token, another token the sign-in
    page's."""
    if rst.request_type is RequestType.RENEW or rst.is_pkcs7:
        return RENEWAL
    security = rst.security
    if security.username is not None and not security.tokens:
        kind = TokenKind.BULK_SECRET
    elif any(t.value_type == ns.VALUE_TYPE_JWT or t.data.startswith(b"eyJ") for t in security.tokens):
        kind = TokenKind.ENTRA_JWT
    else:
        kind = TokenKind.ENROLLMENT_TOKEN
    ctx = rst.context
    try:
        enrollment_type = EnrollmentType.parse(ctx.get("EnrollmentType"))
    except ValueError:
        enrollment_type = EnrollmentType.FULL
    return enrollment_path(
        token_kind=kind,
        enrollment_type=enrollment_type,
        not_in_oobe=ctx.get_bool("NotInOobe"),
        ux_initiated=ctx.get_bool("UXInitiated"),
        domain_name=ctx.get("DomainName"),
        bulk_aadj=ctx.get_bool("BulkAADJ"),
    )
