"""Policies (docs/policies.md): a yes/no question about a host as an osquery SQL query, run by the
host's agent once an hour. A host passes when the query returns at least one row, fails when it
returns none; a query that errors on the host leaves no answer. Global policies apply to every
host, a team's to the hosts of that team.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from winmdm.domain.osquery import HostPolicy, Policy, PolicyCounts
from winmdm.errors import InvalidInput, NotFound
from winmdm.storage.protocols import Storage

MAX_NAME = 255
MAX_SQL = 8000
FAILING_LIMIT = 500


@dataclass(frozen=True, slots=True)
class PolicyDetail:
    counts: PolicyCounts
    failing_hosts: list[tuple[int, str]]  # (host id, display name), at most FAILING_LIMIT


def policy_name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"a policy needs a name of 1 to {MAX_NAME} characters on one line", field="name")
    return name


def policy_sql(value: object) -> str:
    sql = value.strip() if isinstance(value, str) else ""
    if not sql or len(sql) > MAX_SQL or "\x00" in sql:
        raise InvalidInput(
            f"a policy needs an osquery SQL query of 1 to {MAX_SQL} characters "
            "(it passes when it returns a row)",
            field="sql",
        )
    return sql


class PolicyService:
    def __init__(self, storage: Storage, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._clock = clock

    def create(self, name: str, sql: str, team_id: int | None, *, actor: str | None = None) -> Policy:
        """Conflict when the team (or the globals) has a policy of that name; NotFound for an
        unknown team. Every host it applies to runs it at its agent's next policy round."""
        name, sql = policy_name(name), policy_sql(sql)
        now = self._clock()
        with self._storage.transaction() as tx:
            policy = tx.policies.create(team_id, name, sql, at=now)
            team = tx.teams.get(team_id) if team_id is not None else None
            tx.activities.add(
                "created_policy",
                at=now,
                actor=actor,
                details={
                    "policy_id": policy.id,
                    "policy_name": name,
                    "team_id": team_id,
                    "team_name": team.name if team is not None else None,
                },
            )
            return policy

    def list(self, team_id: int | None, *, everything: bool = False) -> list[PolicyCounts]:
        """The team's (None: the global) policies, or all of them, with passing/failing counts."""
        with self._storage.transaction() as tx:
            if team_id is not None and tx.teams.get(team_id) is None:
                raise NotFound(f"no team with id {team_id}")
            return tx.policies.list(team_id, everything=everything)

    def all_policies(self) -> list[Policy]:
        """Every policy, global and of every team."""
        with self._storage.transaction() as tx:
            return [c.policy for c in tx.policies.list(None, everything=True)]

    def get(self, policy_id: int) -> PolicyDetail:
        with self._storage.transaction() as tx:
            policy = tx.policies.get(policy_id)
            if policy is None:
                raise NotFound(f"no policy with id {policy_id}")
            counts = next(c for c in tx.policies.list(policy.team_id) if c.policy.id == policy_id)
            return PolicyDetail(counts, tx.policies.failing_hosts(policy_id, limit=FAILING_LIMIT))

    def delete(self, policy_id: int, *, actor: str | None = None) -> None:
        now = self._clock()
        with self._storage.transaction() as tx:
            policy = tx.policies.get(policy_id)
            if policy is None or not tx.policies.delete(policy_id):
                raise NotFound(f"no policy with id {policy_id}")
            tx.activities.add(
                "deleted_policy",
                at=now,
                actor=actor,
                details={"policy_id": policy_id, "policy_name": policy.name, "team_id": policy.team_id},
            )

    def for_host(self, host_id: int) -> list[HostPolicy]:
        with self._storage.transaction() as tx:
            host = tx.hosts.get(host_id)
            if host is None:
                raise NotFound(f"no host with id {host_id}")
            return tx.policies.for_host(host_id, host.team_id)
