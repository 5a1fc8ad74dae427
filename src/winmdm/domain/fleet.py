"""The fleet as admins see it: hosts' MDM status, host rows and details, paging, the MDM summary.

Shared by services/hosts.py (the rules), storage (search and counts) and every surface (API,
CLI, UI), so one status has one label and one tooltip everywhere (design.md §1).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import HostAgent, Inventory
from winmdm.domain.models import MDMStatus
from winmdm.domain.osquery import AgentNode
from winmdm.errors import InvalidInput

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
MAX_QUERY = 255
NO_TEAM_NAME = "No team"


class HostMDMStatus(enum.StrEnum):
    """A host's MDM status as admins read it (design.md §1)."""

    ON_AUTOMATIC = "on_automatic"
    ON_MANUAL = "on_manual"
    OFF = "off"
    PENDING = "pending"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def tooltip(self) -> str:
        return _TOOLTIPS[self]

    @classmethod
    def parse(cls, value: str, *, field: str = "mdm_status") -> HostMDMStatus:
        """An admin's filter value; InvalidInput naming the allowed values otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise InvalidInput(f"unknown MDM status {value!r}; use one of {allowed}", field=field) from None


_LABELS = {
    HostMDMStatus.ON_AUTOMATIC: "On (automatic)",
    HostMDMStatus.ON_MANUAL: "On (manual)",
    HostMDMStatus.OFF: "Off",
    HostMDMStatus.PENDING: "Pending",
}
_TOOLTIPS = {
    HostMDMStatus.ON_AUTOMATIC: "MDM was turned on automatically. End users can't turn MDM off.",
    HostMDMStatus.ON_MANUAL: "MDM was turned on manually. End users can turn MDM off.",
    HostMDMStatus.OFF: "MDM is off: the host was unenrolled or never enrolled. It must enroll to be managed.",
    HostMDMStatus.PENDING: "The host enrolled. MDM turns on when its first management session completes.",
}


def host_mdm_status(mdm_status: MDMStatus | str, kind: EnrollmentKind | str | None) -> HostMDMStatus:
    """THE rule: On + manual is On (manual); On + automatic, or On before anyone decided the
    kind (hosts enrolled before revision 0003), is On (automatic)."""
    status = MDMStatus(mdm_status)
    if status is MDMStatus.PENDING:
        return HostMDMStatus.PENDING
    if status is MDMStatus.OFF:
        return HostMDMStatus.OFF
    if kind is not None and EnrollmentKind(kind) is EnrollmentKind.MANUAL:
        return HostMDMStatus.ON_MANUAL
    return HostMDMStatus.ON_AUTOMATIC


def stored_states(wanted: HostMDMStatus) -> list[tuple[MDMStatus, EnrollmentKind | None]]:
    """Every stored (mdm_status, enrollment_kind) pair `host_mdm_status` maps to `wanted`: how
    storage turns a status filter into SQL without a second copy of the rule."""
    kinds: list[EnrollmentKind | None] = [None, *EnrollmentKind]
    return [
        (status, kind) for status in MDMStatus for kind in kinds if host_mdm_status(status, kind) is wanted
    ]


# --- paging and filters ------------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: `total` counts every match, not only these items."""

    items: tuple[T, ...]
    total: int
    page: int
    per_page: int


def check_paging(page: int, per_page: int) -> None:
    """API paging rules (docs/api.md): page from 1, per_page 1..500."""
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InvalidInput(f"page must be a whole number from 1, not {page!r}", field="page")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(
            f"per_page must be a whole number from 1 to {MAX_PER_PAGE}, not {per_page!r}", field="per_page"
        )


class TeamScope(enum.Enum):
    """A team filter that is not one team: every host, or the hosts in No team."""

    ALL = "all"
    NO_TEAM = "no_team"


# A team id, or TeamScope.ALL / TeamScope.NO_TEAM.
TeamFilter = int | TeamScope


def team_filter(team_id: int | None, *, field: str = "team_id") -> TeamFilter:
    """The API's spelling (docs/api.md): absent is every team, 0 is No team, else a team id."""
    if team_id is None:
        return TeamScope.ALL
    if isinstance(team_id, bool) or not isinstance(team_id, int) or team_id < 0:
        raise InvalidInput(f"team_id must be 0 (No team) or a team's id, not {team_id!r}", field=field)
    return TeamScope.NO_TEAM if team_id == 0 else team_id


def _check_team(team: TeamFilter) -> None:
    if isinstance(team, TeamScope):
        return
    if isinstance(team, bool) or not isinstance(team, int) or team < 1:
        raise InvalidInput(f"team must be a team's id, not {team!r}", field="team_id")


@dataclass(frozen=True, slots=True)
class HostFilter:
    """Which hosts a list shows. `query` matches display name, serial, IdP username, hardware id
    and MDM device id, case-insensitively, anywhere in the value."""

    mdm_status: HostMDMStatus | None = None
    team: TeamFilter = TeamScope.ALL
    query: str | None = None
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def __post_init__(self) -> None:
        if isinstance(self.mdm_status, str) and not isinstance(self.mdm_status, HostMDMStatus):
            object.__setattr__(self, "mdm_status", HostMDMStatus.parse(self.mdm_status))
        _check_team(self.team)
        query = (self.query or "").strip() or None
        if query is not None and len(query) > MAX_QUERY:
            raise InvalidInput(
                f"the search text is {len(query)} characters long; the limit is {MAX_QUERY}", field="query"
            )
        object.__setattr__(self, "query", query)
        check_paging(self.page, self.per_page)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


# --- hosts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSummary:
    """One row of the hosts list."""

    id: int
    display_name: str
    serial: str | None
    os_version: str | None
    os_edition: str | None
    team_id: int | None  # None is No team
    team_name: str | None  # None for No team
    mdm_status: HostMDMStatus
    idp_username: str | None
    last_seen_at: datetime | None
    created_at: datetime

    @property
    def status_label(self) -> str:
        return self.mdm_status.label


@dataclass(frozen=True, slots=True)
class HostDetail(HostSummary):
    """One host with everything its page shows. Both usernames are kept (design.md §1):
    `idp_username` from the enrollment, `end_user_username` from a later end-user sign-in."""

    uuid: str
    hw_dev_id: str | None
    device_id: str | None
    inventory: Inventory  # manufacturer, model, language, dm_version, ...
    enrollment_kind: EnrollmentKind | None
    enrollment_path: str | None  # services/enrollment_path.py; None without an active enrollment
    end_user_username: str | None
    enrolled_at: datetime | None  # when the active enrollment was made
    agent: HostAgent | None
    updated_at: datetime
    osquery: AgentNode | None = None  # its osquery agent (docs/agent-channel.md), if enrolled


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many hosts of a team (None: No team) have this stored status and kind."""

    team_id: int | None
    mdm_status: MDMStatus
    enrollment_kind: EnrollmentKind | None
    count: int


def zero_counts() -> dict[HostMDMStatus, int]:
    return dict.fromkeys(HostMDMStatus, 0)


@dataclass(frozen=True, slots=True)
class TeamStatusCounts:
    team_id: int | None  # None is No team
    name: str
    counts: Mapping[HostMDMStatus, int]  # every status, zeros included
    total: int


@dataclass(frozen=True, slots=True)
class MDMSummary:
    counts: Mapping[HostMDMStatus, int]  # every status, zeros included
    total: int
    teams: Sequence[TeamStatusCounts]  # No team first, then teams by name
