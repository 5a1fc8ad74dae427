"""Store protocols for enrollment identity (issue 5): teams, enrollment tokens, bulk secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from winmdm.domain.identity import EnrollmentSecret, Team


class TeamStore(Protocol):
    def create(self, name: str, *, at: datetime, end_user_auth: bool = False) -> Team:
        """Names are unique; a clash raises winmdm.errors.Conflict naming the team."""
        ...

    def get(self, team_id: int) -> Team | None: ...

    def list(self) -> list[Team]:
        """By name."""
        ...

    def set_end_user_auth(self, team_id: int, enabled: bool) -> Team:
        """NotFound for an unknown team."""
        ...

    def rename(self, team_id: int, name: str) -> Team:
        """NotFound for an unknown team; Conflict naming the team when another has the name."""
        ...

    def delete(self, team_id: int) -> bool:
        """Delete the team: its hosts go to No team, its profiles (and their host statuses) and
        enrollment secrets are deleted with it. False when there was no such team."""
        ...


class EnrollmentTokenStore(Protocol):
    def consume(self, token_id: str, *, expires_at: datetime, at: datetime) -> bool:
        """Record the single use of an enrollment token: True the first time, False after
        (another device, a replay). Safe under concurrency (a unique key decides)."""
        ...

    def purge_expired(self, now: datetime) -> int:
        """Forget used tokens that have expired anyway; how many."""
        ...


class EnrollmentSecretStore(Protocol):
    def create(self, team_id: int | None, secret_hash: str, *, at: datetime) -> EnrollmentSecret: ...

    def find_active(self, secret_hash: str) -> EnrollmentSecret | None:
        """The unrevoked secret with this hash."""
        ...

    def list(self, team_id: int | None) -> list[EnrollmentSecret]:
        """The team's secrets (None: No team), revoked ones included, oldest first."""
        ...

    def revoke(self, secret_id: int, at: datetime) -> bool:
        """True when it was active."""
        ...
