"""The hosts admins see: list, detail, delete, transfer between teams, the MDM summary
(docs/api.md "Hosts" and "MDM summary"). Every admin change leaves an activity with its actor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from winmdm.domain.fleet import (
    NO_TEAM_NAME,
    HostDetail,
    HostFilter,
    HostSummary,
    MDMSummary,
    Page,
    TeamFilter,
    TeamScope,
    TeamStatusCounts,
    host_mdm_status,
    zero_counts,
)
from winmdm.domain.identity import Team
from winmdm.errors import InvalidInput, NotFound
from winmdm.services.enrollment_path import path_of
from winmdm.services.profiles import ProfileService
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.hosts")


def host_missing(host_id: int) -> NotFound:
    return NotFound(f"no host with id {host_id}; it may have been deleted")


def team_missing(team_id: int) -> NotFound:
    return NotFound(f"no team with id {team_id}; list the teams to see their ids")


class HostService:
    def __init__(
        self, storage: Storage, clock: Callable[[], datetime], *, profiles: ProfileService | None = None
    ) -> None:
        self._storage = storage
        self._clock = clock
        # With it, a moved host trades its old team's profiles for its new team's.
        self._profiles = profiles

    def list(self, filter: HostFilter) -> Page[HostSummary]:
        """NotFound when the filter names a team that does not exist."""
        with self._storage.transaction() as tx:
            _team_of_filter(tx, filter.team)
            rows, total = tx.hosts.search(filter)
        return Page(items=tuple(rows), total=total, page=filter.page, per_page=filter.per_page)

    def get(self, host_id: int) -> HostDetail:
        with self._storage.transaction() as tx:
            host = tx.hosts.get(host_id)
            if host is None:
                raise host_missing(host_id)
            team = None if host.team_id is None else tx.teams.get(host.team_id)
            inventory = tx.inventory.get_inventory(host_id)
            enrollment = tx.enrollments.active_for_host(host_id)
            agent = tx.agent.host_status(host_id)
            osquery = tx.osquery_nodes.for_host(host_id)
        return HostDetail(
            id=host.id,
            display_name=host.display_name,
            serial=host.serial,
            os_version=host.os_version,
            os_edition=host.os_edition,
            team_id=host.team_id,
            team_name=None if team is None else team.name,
            mdm_status=host_mdm_status(host.mdm_status, host.enrollment_kind),
            idp_username=host.idp_username,
            last_seen_at=host.last_seen_at,
            created_at=host.created_at,
            uuid=host.uuid,
            hw_dev_id=host.hw_dev_id,
            device_id=host.device_id,
            inventory=inventory,
            enrollment_kind=host.enrollment_kind,
            enrollment_path=None if enrollment is None else path_of(enrollment),
            end_user_username=None if enrollment is None else enrollment.end_user_username,
            enrolled_at=None if enrollment is None else enrollment.created_at,
            agent=agent,
            updated_at=host.updated_at,
            osquery=osquery,
        )

    def delete(self, host_id: int, *, actor: str | None) -> None:
        """Forget the host. Its certificates are revoked first, then deleted with it: the PC
        must enroll again to be managed (its certificate is unknown from now on)."""
        now = self._clock()
        with self._storage.transaction() as tx:
            host = tx.hosts.get(host_id)
            if host is None:
                raise host_missing(host_id)
            revoked = tx.certificates.revoke_active_for_host(host_id, now, "host deleted by an admin")
            tx.enrollments.deactivate_for_host(host_id)
            tx.hosts.delete(host_id)
            # No host_id: the activity outlives the host (it would be set NULL anyway).
            tx.activities.add(
                "deleted_host",
                at=now,
                actor=actor,
                details={
                    "host_id": host.id,
                    "host_serial": host.serial,
                    "host_display_name": host.display_name,
                    "revoked_certificates": revoked,
                },
            )
        log.info("host %s (%s) deleted by %s", host_id, host.display_name, actor)

    def transfer(self, team_id: int | None, host_ids: Sequence[int], *, actor: str | None) -> int:
        """Move the hosts to the team (None or 0: No team), all or none; how many moved. A host
        already there is left alone and gets no activity."""
        team_id = None if team_id == 0 else team_id
        wanted = _host_ids(host_ids)
        now = self._clock()
        moved = 0
        with self._storage.transaction() as tx:
            team = None if team_id is None else tx.teams.get(team_id)
            if team_id is not None and team is None:
                raise team_missing(team_id)
            hosts = []
            for host_id in wanted:
                host = tx.hosts.get(host_id)
                if host is None:
                    raise host_missing(host_id)
                hosts.append(host)
            names = {t.id: t.name for t in tx.teams.list()}
            for host in hosts:
                if host.team_id == team_id:
                    continue
                if self._profiles is not None:
                    self._profiles.host_moved(tx, host, team_id, now)
                tx.hosts.set_team(host.id, team_id)
                tx.activities.add(
                    "transferred_host",
                    at=now,
                    actor=actor,
                    host_id=host.id,
                    details={
                        "host_serial": host.serial,
                        "host_display_name": host.display_name,
                        "team_id": team_id,
                        "team_name": _team_name(team),
                        "previous_team_id": host.team_id,
                        "previous_team_name": names.get(host.team_id, NO_TEAM_NAME),
                    },
                )
                moved += 1
        log.info("%s host(s) moved to %s by %s", moved, _team_name(team), actor)
        return moved

    def summary(self, team: TeamFilter = TeamScope.ALL) -> MDMSummary:
        """Hosts per MDM status, in all and per team (No team first, then teams by name). A team
        filter narrows both to that team (or No team)."""
        with self._storage.transaction() as tx:
            only = _team_of_filter(tx, team)
            counts = tx.hosts.status_counts(team)
            teams = [] if team is TeamScope.NO_TEAM else ([only] if only else tx.teams.list())
        per_team: dict[int | None, dict] = {t.id: zero_counts() for t in teams}
        if team in (TeamScope.ALL, TeamScope.NO_TEAM):
            per_team = {None: zero_counts()} | per_team
        overall = zero_counts()
        for count in counts:
            status = host_mdm_status(count.mdm_status, count.enrollment_kind)
            overall[status] += count.count
            # A team created meanwhile has no row of its own; its hosts still count overall.
            if count.team_id in per_team:
                per_team[count.team_id][status] += count.count
        names = {t.id: t.name for t in teams} | {None: NO_TEAM_NAME}
        rows = [
            TeamStatusCounts(team_id=key, name=names[key], counts=value, total=sum(value.values()))
            for key, value in per_team.items()
        ]
        return MDMSummary(counts=overall, total=sum(overall.values()), teams=rows)


def _team_name(team: Team | None) -> str:
    return NO_TEAM_NAME if team is None else team.name


def _team_of_filter(tx: Transaction, team: TeamFilter) -> Team | None:
    if isinstance(team, TeamScope):
        return None
    found = tx.teams.get(team)
    if found is None:
        raise team_missing(team)
    return found


def _host_ids(host_ids: Sequence[int]) -> list[int]:
    """Distinct, in the order given; InvalidInput naming the bad entry (host_ids[2])."""
    if isinstance(host_ids, str | bytes) or not host_ids:
        raise InvalidInput("choose at least one host to transfer", field="host_ids")
    seen: dict[int, None] = {}
    for index, host_id in enumerate(host_ids):
        if isinstance(host_id, bool) or not isinstance(host_id, int) or host_id < 1:
            raise InvalidInput(f"{host_id!r} is not a host id", field=f"host_ids[{index}]")
        seen.setdefault(host_id)
    return list(seen)
