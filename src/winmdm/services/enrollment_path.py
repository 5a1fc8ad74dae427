"""How a host enrolled, in words an admin recognises: the path beside the manual/automatic rule.

It reads the same facts as `services.enrollment_kind.enrollment_kind`, in the same order, so a
path never contradicts the kind shown next to it (the table test checks both over every path).
The ms-device-enrollment: deep link opens the Settings device-management flow, so it reads as
that. A certificate renewal (MS-WSTEP Renew) never makes an enrollment: the host keeps the
path it enrolled by.
"""

from __future__ import annotations

from winmdm.domain.models import Enrollment, EnrollmentType, TokenKind

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
