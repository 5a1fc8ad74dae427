"""Teams (docs/api.md "Teams"): create, rename, end-user authentication, delete. A deleted
team's hosts go to No team; its profiles are removed from its hosts and deleted, and its
enrollment secrets stop working. Every change leaves an activity with its actor.

Enrollment secrets of a team are services/bulk.py's EnrollmentSecrets (they record their own
activities)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from winmdm.domain.fleet import NO_TEAM_NAME, HostFilter
from winmdm.domain.identity import Team
from winmdm.domain.models import MDMStatus
from winmdm.errors import Conflict, InvalidInput
from winmdm.services.hosts import team_missing
from winmdm.services.profiles import ProfileService
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.teams")

MAX_NAME = 255


def team_name(name: str, *, field: str = "name") -> str:
    """A team name as stored: trimmed, 1 to 255 characters, printable, never "No team"."""
    if not isinstance(name, str):
        raise InvalidInput("the team name must be text", field=field)
    name = name.strip()
    if not name:
        raise InvalidInput("the team name is empty; give the team a name of 1 to 255 characters", field=field)
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"the team name is {len(name)} characters long; shorten it to {MAX_NAME} or fewer", field=field
        )
    if not name.isprintable():
        raise InvalidInput(
            "the team name contains a line break or control character; use one line of text", field=field
        )
    if name.casefold() == NO_TEAM_NAME.casefold():
        raise InvalidInput(
            f'"{NO_TEAM_NAME}" is reserved for hosts without a team; choose another name', field=field
        )
    return name


class TeamService:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        *,
        profiles: ProfileService | None = None,
    ) -> None:
        # With `profiles`, deleting a team removes its profiles from its hosts (Delete commands);
        # without, the profiles are only deleted with the team.
        self._storage = storage
        self._clock = clock
        self._profiles = profiles

    def list(self) -> list[Team]:
        """By name, case-insensitively."""
        with self._storage.transaction() as tx:
            return tx.teams.list()

    def get(self, team_id: int) -> Team:
        with self._storage.transaction() as tx:
            return _team(tx, team_id)

    def create(self, name: str, *, end_user_authentication: bool = False, actor: str | None) -> Team:
        """Conflict when another team has the name."""
        name = team_name(name)
        now = self._clock()
        with self._storage.transaction() as tx:
            _check_unique(tx, name, None)
            team = tx.teams.create(name, at=now, end_user_auth=bool(end_user_authentication))
            tx.activities.add(
                "created_team",
                at=now,
                actor=actor,
                details={
                    "team_id": team.id,
                    "team_name": team.name,
                    "end_user_authentication": team.end_user_auth,
                },
            )
        log.info('team %s "%s" created by %s', team.id, team.name, actor)
        return team

    def update(
        self,
        team_id: int,
        *,
        name: str | None = None,
        end_user_authentication: bool | None = None,
        actor: str | None,
    ) -> Team:
        """Change what is given; an unchanged value changes nothing and leaves no activity."""
        new_name = None if name is None else team_name(name)
        now = self._clock()
        with self._storage.transaction() as tx:
            team = _team(tx, team_id)
            if new_name is not None and new_name != team.name:
                _check_unique(tx, new_name, team_id)
                previous = team.name
                team = tx.teams.rename(team_id, new_name)
                tx.activities.add(
                    "edited_team",
                    at=now,
                    actor=actor,
                    details={"team_id": team.id, "team_name": team.name, "previous_name": previous},
                )
            if end_user_authentication is not None and bool(end_user_authentication) != team.end_user_auth:
                team = tx.teams.set_end_user_auth(team_id, bool(end_user_authentication))
                kind = "enabled" if team.end_user_auth else "disabled"
                tx.activities.add(
                    f"{kind}_end_user_authentication",
                    at=now,
                    actor=actor,
                    details={"team_id": team.id, "team_name": team.name},
                )
        return team

    def delete(self, team_id: int, *, actor: str | None) -> None:
        if self._profiles is not None:
            # Each removal queues Deletes for what the profile added on the team's hosts.
            for profile in self._profiles.list_profiles(self.get(team_id).id):
                self._profiles.remove_profile(profile.id, actor=actor)
        now = self._clock()
        with self._storage.transaction() as tx:
            team = _team(tx, team_id)
            _, hosts = tx.hosts.search(HostFilter(team=team_id, per_page=1))
            if self._profiles is not None:
                # Its hosts go to No team and get No team's profiles (theirs were removed above).
                for host_id in tx.hosts.list_ids(team_id=team_id, mdm_statuses=tuple(MDMStatus)):
                    host = tx.hosts.get(host_id)
                    if host is not None:
                        self._profiles.host_moved(tx, host, None, now)
            tx.teams.delete(team_id)
            tx.activities.add(
                "deleted_team",
                at=now,
                actor=actor,
                details={"team_id": team.id, "team_name": team.name, "hosts_moved_to_no_team": hosts},
            )
        log.info('team %s "%s" deleted by %s; %s host(s) now in No team', team.id, team.name, actor, hosts)


def _team(tx: Transaction, team_id: int) -> Team:
    team = tx.teams.get(team_id)
    if team is None:
        raise team_missing(team_id)
    return team


def _check_unique(tx: Transaction, name: str, team_id: int | None) -> None:
    """Team names are unique ignoring case: "Laptops" and "laptops" would read as one team."""
    for other in tx.teams.list():
        if other.id != team_id and other.name.casefold() == name.casefold():
            raise Conflict(f'a team named "{other.name}" already exists; choose another name')
