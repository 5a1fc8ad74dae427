"""The manual/automatic rule over every enrollment path Windows offers (one table)."""

from __future__ import annotations

import pytest

from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import TokenKind
from winmdm.services.enrollment_kind import enrollment_kind

MANUAL, AUTOMATIC = EnrollmentKind.MANUAL, EnrollmentKind.AUTOMATIC
ENTRA, OWN, BULK = TokenKind.ENTRA_JWT, TokenKind.ENROLLMENT_TOKEN, TokenKind.BULK_SECRET

# path, token kind, NotInOobe, UXInitiated, DomainName, BulkAADJ -> expected
PATHS = [
    ("Settings > Connect with a work account (Entra registered)", ENTRA, True, True, None, None, MANUAL),
    ("Settings > Enroll only in device management (sign-in page)", OWN, True, True, None, None, MANUAL),
    ("Settings > Join this device to Entra ID", ENTRA, True, True, None, None, MANUAL),
    ("ms-device-enrollment: deep link", OWN, True, True, None, None, MANUAL),
    ("agent-triggered programmatic enrollment in a user session", OWN, True, False, None, None, MANUAL),
    ("OOBE Entra join", ENTRA, False, True, None, None, AUTOMATIC),
    ("Autopilot (user driven)", ENTRA, False, False, None, None, AUTOMATIC),
    (
        "Group Policy auto-enrollment (domain joined, no UX)",
        ENTRA,
        True,
        False,
        "corp.example.com",
        None,
        AUTOMATIC,
    ),
    (
        "Group Policy on Windows before 1903 (no NotInOobe)",
        ENTRA,
        None,
        False,
        "corp.example.com",
        None,
        AUTOMATIC,
    ),
    ("bulk enrollment (provisioning package secret)", BULK, True, False, None, None, AUTOMATIC),
    ("bulk Entra join (provisioning package)", ENTRA, True, False, None, True, AUTOMATIC),
    ("Settings on Windows before 1903 (no NotInOobe)", ENTRA, None, True, None, None, MANUAL),
    (
        "domain-joined PC enrolled from Settings by its user",
        ENTRA,
        True,
        True,
        "corp.example.com",
        None,
        MANUAL,
    ),
]


@pytest.mark.parametrize(
    ("path", "token_kind", "not_in_oobe", "ux_initiated", "domain_name", "bulk_aadj", "expected"),
    PATHS,
    ids=[p[0] for p in PATHS],
)
def test_every_path(path, token_kind, not_in_oobe, ux_initiated, domain_name, bulk_aadj, expected) -> None:
    kind = enrollment_kind(
        token_kind=token_kind,
        not_in_oobe=not_in_oobe,
        ux_initiated=ux_initiated,
        domain_name=domain_name,
        bulk_aadj=bulk_aadj,
    )
    assert kind is expected, path
