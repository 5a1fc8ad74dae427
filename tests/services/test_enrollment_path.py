"""The enrollment path label over every path Windows offers, beside its manual/automatic kind
(one table: a path never contradicts the kind shown next to it)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.storage.test_contract import T0
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import Enrollment, EnrollmentType, TokenKind
from winmdm.services import enrollment_path as paths
from winmdm.services.enrollment_kind import enrollment_kind

MANUAL, AUTOMATIC = EnrollmentKind.MANUAL, EnrollmentKind.AUTOMATIC
ENTRA, OWN, BULK, RENEWAL = (
    TokenKind.ENTRA_JWT,
    TokenKind.ENROLLMENT_TOKEN,
    TokenKind.BULK_SECRET,
    TokenKind.RENEWAL,
)
FULL, DEVICE = EnrollmentType.FULL, EnrollmentType.DEVICE
DOMAIN = "corp.example.com"

# what happened, token kind, EnrollmentType, NotInOobe, UXInitiated, DomainName, BulkAADJ -> label, kind
PATHS = [
    (
        "Settings > Connect with a work account",
        ENTRA,
        FULL,
        True,
        True,
        None,
        None,
        paths.WORK_ACCOUNT,
        MANUAL,
    ),
    (
        "Settings > Enroll only in device management",
        OWN,
        FULL,
        True,
        True,
        None,
        None,
        paths.MDM_ONLY,
        MANUAL,
    ),
    ("ms-device-enrollment: deep link", OWN, FULL, True, True, None, None, paths.MDM_ONLY, MANUAL),
    (
        "Settings > Join this device to Entra ID",
        ENTRA,
        DEVICE,
        True,
        True,
        None,
        None,
        paths.ENTRA_JOIN_SETTINGS,
        MANUAL,
    ),
    (
        "agent-triggered programmatic enrollment",
        OWN,
        FULL,
        True,
        False,
        None,
        None,
        paths.PROGRAMMATIC,
        MANUAL,
    ),
    ("OOBE Entra join", ENTRA, DEVICE, False, True, None, None, paths.OOBE, AUTOMATIC),
    ("Autopilot (user driven)", ENTRA, DEVICE, False, False, None, None, paths.OOBE, AUTOMATIC),
    ("Group Policy auto-enrollment", ENTRA, DEVICE, True, False, DOMAIN, None, paths.GROUP_POLICY, AUTOMATIC),
    (
        "Group Policy before 1903 (no NotInOobe)",
        ENTRA,
        FULL,
        None,
        False,
        DOMAIN,
        None,
        paths.GROUP_POLICY,
        AUTOMATIC,
    ),
    ("provisioning package secret", BULK, FULL, True, False, None, None, paths.BULK, AUTOMATIC),
    ("provisioning package Entra join", ENTRA, DEVICE, True, False, None, True, paths.BULK_ENTRA, AUTOMATIC),
    ("Settings before 1903 (no NotInOobe)", ENTRA, FULL, None, True, None, None, paths.WORK_ACCOUNT, MANUAL),
    (
        "domain-joined PC, work account from Settings",
        ENTRA,
        FULL,
        True,
        True,
        DOMAIN,
        None,
        paths.WORK_ACCOUNT,
        MANUAL,
    ),
    (
        "Lite (legacy user context)",
        ENTRA,
        EnrollmentType.LITE,
        True,
        True,
        None,
        None,
        paths.WORK_ACCOUNT,
        MANUAL,
    ),
]


@pytest.mark.parametrize(
    ("what", "token_kind", "enrollment_type", "not_in_oobe", "ux", "domain", "bulk_aadj", "label", "kind"),
    PATHS,
    ids=[p[0] for p in PATHS],
)
def test_every_path(
    what, token_kind, enrollment_type, not_in_oobe, ux, domain, bulk_aadj, label, kind
) -> None:
    facts = {"not_in_oobe": not_in_oobe, "ux_initiated": ux, "domain_name": domain, "bulk_aadj": bulk_aadj}
    assert paths.enrollment_path(token_kind=token_kind, enrollment_type=enrollment_type, **facts) == label, (
        what
    )
    assert enrollment_kind(token_kind=token_kind, **facts) is kind, what


def test_a_renewal_credential_reads_as_renewal() -> None:
    # Renewal keeps the original enrollment (and so its path); this label is for a record that
    # says it came from a renewal credential, should one ever exist.
    label = paths.enrollment_path(
        token_kind=RENEWAL, enrollment_type=FULL, not_in_oobe=True, ux_initiated=True, domain_name=None
    )
    assert label == paths.RENEWAL


def _enrollment(**changes) -> Enrollment:
    base = Enrollment(
        id=1,
        host_id=1,
        device_id="DEV",
        hw_dev_id=None,
        enrollment_type=DEVICE,
        not_in_oobe=True,
        ux_initiated=False,
        device_name=None,
        os_version=None,
        os_edition=None,
        domain_name=None,
        upn=None,
        token_kind=ENTRA,
        context=(),
        dm_username="u",
        dm_password_digest="d",
        dm_server_secret="s",
        dm_nonce="n",
        active=True,
        created_at=T0,
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("context", "label"),
    [
        ((("BulkAADJ", "true"),), paths.BULK_ENTRA),
        ((("bulkaadj", "1"),), paths.BULK_ENTRA),
        ((("BulkAADJ", "false"),), paths.PROGRAMMATIC),
        ((), paths.PROGRAMMATIC),
    ],
)
def test_path_of_a_stored_enrollment_reads_bulk_aadj_from_its_context(context, label) -> None:
    assert paths.path_of(_enrollment(context=context)) == label
