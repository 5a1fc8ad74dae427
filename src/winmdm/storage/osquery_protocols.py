"""Store protocols for the osquery agent channel (docs/agent-channel.md): nodes, live queries and
policies (docs/policies.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from winmdm.domain.osquery import AgentNode, HostPolicy, LiveQuery, NewAgentNode, Policy, PolicyCounts


class AgentNodeStore(Protocol):
    def replace(self, new: NewAgentNode) -> AgentNode:
        """The host's agent node from now on: any earlier node of the host is forgotten, so its
        node key stops working."""
        ...

    def by_key_hash(self, node_key_hash: str) -> AgentNode | None: ...

    def for_host(self, host_id: int) -> AgentNode | None: ...

    def find_by_hardware_uuid(self, hardware_uuid: str | None) -> AgentNode | None:
        """The oldest node reporting this hardware UUID; None and empty never match."""
        ...

    def seen(self, node_id: int, at: datetime) -> None:
        """Record a request of the agent: the node's and its host's last_seen_at."""
        ...

    def count_logs(self, node_id: int, *, status: int, result: int, at: datetime) -> None:
        """Add to the node's log counters and set last_log_at."""
        ...

    def mdm_checked(self, node_id: int, at: datetime | None) -> None:
        """When the agent was last asked for the MDM DeviceID; None asks at its next read."""
        ...

    def policies_sent(self, node_id: int, at: datetime | None) -> None:
        """When the agent was last sent its policies; None sends them at its next read."""
        ...


class LiveQueryStore(Protocol):
    def add(self, host_id: int, sql: str, *, actor: str | None, at: datetime) -> LiveQuery:
        """NotFound for an unknown host."""
        ...

    def get(self, query_id: int) -> LiveQuery | None: ...

    def list_for_host(self, host_id: int, *, limit: int, with_rows: bool = True) -> list[LiveQuery]:
        """Newest first. Without rows, each query's `rows` is empty (its row_count stays): a
        list that shows counts need not read up to a body limit of results per query."""
        ...

    def take_pending(self, host_id: int, *, limit: int, at: datetime) -> list[LiveQuery]:
        """The host's oldest pending queries, now marked sent."""
        ...

    def record_result(
        self,
        host_id: int,
        query_id: int,
        *,
        status: int,
        message: str | None,
        rows: Sequence[dict[str, Any]],
        row_count: int,
        at: datetime,
    ) -> bool:
        """Store the result of one of the host's queries that is not done yet; False when there
        is none (unknown, another host's, or answered already)."""
        ...


class PolicyStore(Protocol):
    def create(self, team_id: int | None, name: str, sql: str, *, at: datetime) -> Policy:
        """Conflict when the team (None: the global policies) has a policy of that name;
        NotFound for an unknown team."""
        ...

    def get(self, policy_id: int) -> Policy | None: ...

    def list(self, team_id: int | None, *, everything: bool = False) -> list[PolicyCounts]:
        """The team's policies (None: the global ones), or every policy, by name, with how many
        of the hosts it applies to pass and fail it."""
        ...

    def for_team(self, team_id: int | None) -> list[Policy]:
        """What a host of this team runs: the global policies and the team's, by id."""
        ...

    def delete(self, policy_id: int) -> bool: ...

    def record(self, policy_id: int, host_id: int, passes: bool | None, *, at: datetime) -> None:
        """The host's latest answer to the policy."""
        ...

    def failing_hosts(self, policy_id: int, *, limit: int) -> list[tuple[int, str]]:
        """(id, display name) of the hosts the policy applies to that fail it, by id."""
        ...

    def for_host(self, host_id: int, team_id: int | None) -> list[HostPolicy]:
        """The policies a host of this team runs, with its answers, by name."""
        ...
