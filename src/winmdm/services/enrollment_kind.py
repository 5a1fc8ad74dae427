"""Manual or automatic: who turned MDM on (design.md §1, issue "every enrollment path").

On (manual): MDM was turned on from a user session, and the end user can turn it off: Settings
("Connect" with a work account, "Enroll only in device management", Entra join from Settings),
the ms-device-enrollment: deep link, and programmatic enrollment by an agent.
On (automatic): the organisation turned it on with no user choice: OOBE / Autopilot Entra join
(NotInOobe=false), Group Policy (no UX, domain joined), and bulk enrollment (provisioning package).

This is the one place the rule lives; a table test covers every path.
"""

from __future__ import annotations

from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import TokenKind


def enrollment_kind(
    *,
    token_kind: TokenKind,
    not_in_oobe: bool | None,
    ux_initiated: bool | None,
    domain_name: str | None,
    bulk_aadj: bool | None = None,
) -> EnrollmentKind:
    """Decide from what the RST's AdditionalContext and its credential say (MS-MDE2 §3.4.4)."""
    if token_kind is TokenKind.BULK_SECRET or bulk_aadj:
        return EnrollmentKind.AUTOMATIC  # a provisioning package: no user choice
    if not_in_oobe is False:
        return EnrollmentKind.AUTOMATIC  # OOBE / Autopilot
    if ux_initiated is False and (domain_name or "").strip():
        return EnrollmentKind.AUTOMATIC  # Group Policy auto-enrollment of a domain-joined PC
    # Settings, the deep link, or an agent calling the enrollment API in a user session. Windows
    # before 1903 sends no NotInOobe: with UX, or without a domain, it was a user's doing.
    return EnrollmentKind.MANUAL
