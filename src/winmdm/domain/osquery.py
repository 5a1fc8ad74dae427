"""What winmdm keeps about the osquery agent of a host (docs/agent-channel.md): its node, and the
live queries an admin sent it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AgentNode:
    """One enrolled osquery of a host (one per host). The node key is kept as its SHA-256 only."""

    id: int
    host_id: int
    node_key_hash: str
    host_identifier: str | None
    hardware_uuid: str | None
    hardware_serial: str | None
    platform_type: str | None
    osquery_version: str | None
    enrolled_at: datetime
    last_seen_at: datetime
    # When the agent last answered winmdm's MDM device id query (None: never).
    mdm_checked_at: datetime | None
    status_logs: int
    result_logs: int
    last_log_at: datetime | None
    policies_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewAgentNode:
    host_id: int
    node_key_hash: str
    host_identifier: str | None
    hardware_uuid: str | None
    hardware_serial: str | None
    platform_type: str | None
    osquery_version: str | None
    enrolled_at: datetime


class LiveQueryState(enum.StrEnum):
    """PENDING: not read by the agent yet. SENT: the agent took it (distributed read). DONE: the
    agent wrote its result (distributed write)."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class LiveQuery:
    id: int
    host_id: int
    sql: str
    state: LiveQueryState
    actor: str | None
    created_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    # osquery's status (0 = ran; else SQLite's error code) and its message.
    status: int | None
    message: str | None
    # Every row as osquery sent it (column -> string), at most LIVE_QUERY_MAX_ROWS of them.
    rows: list[dict[str, Any]]
    row_count: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A yes/no question about a host as osquery SQL: it passes when the query returns a row
    (docs/policies.md). team_id None is a global policy: every host runs it."""

    id: int
    team_id: int | None
    name: str
    sql: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PolicyCounts:
    policy: Policy
    passing: int
    failing: int


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """A policy of a host, with the host's latest answer (None: not answered, or the query
    failed on the host)."""

    policy: Policy
    passes: bool | None
    updated_at: datetime | None
