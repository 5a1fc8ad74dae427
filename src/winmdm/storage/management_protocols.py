"""Store protocols for OMA-DM management (issue 4): sessions, command queue, inventory, profiles,
agent package, activities. Reached through the same Transaction as the enrollment stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from winmdm.domain.management import (
    Activity,
    AgentPackage,
    AgentStatus,
    Command,
    CommandKind,
    CommandReply,
    HostAgent,
    HostCommand,
    HostProfile,
    Inventory,
    MDMSession,
    Profile,
    ProfileStatus,
)
from winmdm.domain.models import Host, MDMStatus


class InventoryStore(Protocol):
    def record_inventory(self, host_id: int, inventory: Inventory, at: datetime) -> Host:
        """Store what the device reported; None fields keep the stored value.

        serial -> hosts.serial, device_name -> hosts.display_name, os_version -> hosts.os_version;
        manufacturer/model/language/dm_version in their own host columns.
        """
        ...

    def get_inventory(self, host_id: int) -> Inventory: ...

    def set_mdm_status(self, host_id: int, status: MDMStatus, at: datetime) -> None: ...

    def checked_in(self, host_id: int, at: datetime) -> None:
        """hosts.last_seen_at = at."""
        ...


class SessionStore(Protocol):
    def get(self, enrollment_id: int) -> MDMSession | None:
        """The enrollment's current (latest) session, if any."""
        ...

    def save(self, session: MDMSession) -> None:
        """Insert or replace the enrollment's session (one row per enrollment)."""
        ...

    def save_answered(
        self, session: MDMSession, *, host_id: int, seen_at: datetime, nonce: str | None
    ) -> None:
        """What every answered message writes: `save(session)`, the host's last-seen time
        (`checked_in`) and, when the answer carried one, the enrollment's new nonce
        (`renew_nonce`). One statement where the database allows it (PostgreSQL)."""
        ...


class CommandQueue(Protocol):
    def create(
        self,
        kind: CommandKind,
        payload: str,
        *,
        at: datetime,
        uuid: str,
        actor: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Command: ...

    def enqueue(self, command_id: int, host_ids: Sequence[int], at: datetime) -> int:
        """Queue the command for every host (ignoring hosts that already have it); how many queued."""
        ...

    def queued_here(self, host_id: int) -> bool:
        """Whether this transaction queued a command for the host (after its device state was read)."""
        ...

    def next_for_host(self, host_id: int, session_key: str) -> list[HostCommand]:
        """ONE query: the host's PENDING commands, plus SENT ones from another session (that
        session broke before the device answered), oldest first (by command id). Sessions are
        told apart by their MDMSession.key, never by the device's SessionID, which repeats."""
        ...

    def mark_sent(
        self,
        host_id: int,
        command_id: int,
        *,
        session_key: str,
        msg_id: int,
        cmd_ids: Sequence[int],
        at: datetime,
    ) -> None:
        """State SENT (in the session with this MDMSession.key), attempts + 1."""
        ...

    def record_reply(
        self,
        host_id: int,
        command_id: int,
        *,
        status_code: int | None,
        replies: Sequence[CommandReply],
        raw_reply: str,
        at: datetime,
    ) -> bool:
        """SENT -> DONE with the device's answer. False (and nothing written) unless it was SENT:
        a reply is never applied twice."""
        ...

    def cancel_pending(self, host_id: int, command_uuid: str) -> bool:
        """Drop the host's delivery of the command if it is still PENDING (never sent); True when
        dropped. A SENT or DONE delivery stays: the device has it."""
        ...

    def get(self, host_id: int, command_uuid: str) -> HostCommand | None: ...

    def deliveries(self, command_uuid: str) -> list[HostCommand]:
        """The command's delivery to each host it was queued for, by host id ([] when unknown)."""
        ...

    def list_for_host(self, host_id: int, *, limit: int = 100) -> list[HostCommand]:
        """Newest first."""
        ...


class ProfileStore(Protocol):
    def create(self, *, team_id: int | None, name: str, syncml: str, at: datetime) -> Profile:
        """Names are unique per team (No team included); a clash raises winmdm.errors.Conflict."""
        ...

    def get(self, profile_id: int) -> Profile | None: ...

    def list(self, *, team_id: int | None = None, all_teams: bool = False) -> list[Profile]: ...

    def delete(self, profile_id: int) -> bool: ...

    def set_host_status(
        self,
        host_id: int,
        profile_id: int,
        status: ProfileStatus,
        *,
        detail: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None:
        """Upsert the host's status for the profile."""
        ...

    def set_host_statuses(
        self,
        host_ids: Sequence[int],
        profile_id: int,
        status: ProfileStatus,
        *,
        detail: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None:
        """`set_host_status` for many hosts in one statement (a profile fanned out to a team);
        ids of hosts that do not exist are skipped."""
        ...

    def clear_host_status(self, host_id: int, profile_id: int) -> bool:
        """Forget the host's status for the profile (the host left the profile's team)."""
        ...

    def host_statuses(self, host_id: int) -> list[HostProfile]: ...

    def hosts_with_profile(self, profile_id: int) -> list[HostProfile]: ...


class AgentStore(Protocol):
    def set_package(self, package: AgentPackage) -> None:
        """Replace the one agent package."""
        ...

    def get_package(self) -> AgentPackage | None: ...

    def set_host_status(
        self,
        host_id: int,
        status: AgentStatus,
        *,
        last_error: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None: ...

    def host_status(self, host_id: int) -> HostAgent | None: ...


class ActivityStore(Protocol):
    def add(
        self,
        type: str,
        *,
        at: datetime,
        actor: str | None = None,
        host_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> Activity: ...

    def list(self, *, host_id: int | None = None, limit: int = 100, offset: int = 0) -> list[Activity]:
        """Newest first; `offset` skips that many of the newest."""
        ...

    def count(self, *, host_id: int | None = None) -> int:
        """How many activities (of the host, when given) there are."""
        ...
