"""Small role-named store protocols the services depend on (design.md §3).

A service opens one transaction and reaches every store through it, so an enrollment (host,
enrollment, certificate) is written entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from winmdm.domain.fleet import HostFilter, HostSummary, StatusCount, TeamFilter
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import DeviceState
from winmdm.domain.models import (
    DeviceCertificate,
    Enrollment,
    Host,
    MDMStatus,
    NewEnrollment,
    NewHost,
)
from winmdm.storage.admin_protocols import AdminStore, AdminTokenStore, LoginFailureStore, SettingStore
from winmdm.storage.identity_protocols import EnrollmentSecretStore, EnrollmentTokenStore, TeamStore
from winmdm.storage.management_protocols import (
    ActivityStore,
    AgentStore,
    CommandQueue,
    InventoryStore,
    ProfileStore,
    SessionStore,
)
from winmdm.storage.osquery_protocols import AgentNodeStore, LiveQueryStore, PolicyStore


class HostStore(Protocol):
    def create(self, new: NewHost) -> Host: ...

    def get(self, host_id: int) -> Host | None: ...

    def find_known(self, *, hw_dev_id: str | None, device_id: str | None) -> Host | None:
        """The host with this hardware id, else the one with this MDM device id, else None.

        A None or empty identifier never matches anything.
        """
        ...

    def list_ids(self, *, team_id: int | None, mdm_statuses: Sequence[MDMStatus]) -> list[int]:
        """Ids of the team's hosts (None: No team) with one of these MDM statuses, ascending."""
        ...

    def record_enrollment(
        self,
        host_id: int,
        *,
        display_name: str,
        hw_dev_id: str | None,
        device_id: str | None,
        os_version: str | None,
        os_edition: str | None,
        idp_username: str | None,
        mdm_status: MDMStatus,
        at: datetime,
        enrollment_kind: EnrollmentKind | None = None,
        entra_device_id: str | None = None,
    ) -> Host:
        """Refresh what a (re-)enrollment tells about a known host. Never touches team_id.

        A None hw_dev_id/device_id/os/idp_username/enrollment_kind/entra_device_id keeps the
        stored value. An Entra device id names one host at a time: recording it here (or in
        `create`) forgets it on any other host.
        """
        ...

    def set_team(self, host_id: int, team_id: int | None) -> None:
        """Move the host to the team (None: No team). NotFound for an unknown host or team."""
        ...

    def find_by_serial(self, serial: str | None) -> Host | None:
        """The oldest host with this serial number.

        None, blank and placeholder serials ("To be filled by O.E.M.", ...; see
        `domain.identity.is_real_serial`) identify no device and never match.
        """
        ...

    def find_by_entra_device_id(self, entra_device_id: str | None) -> Host | None:
        """The host whose latest Entra enrollment carried this Entra device id (the token's
        ``deviceid``), else None. None and empty never match; compared exactly (callers
        normalise with `domain.identity.entra_device_id`)."""
        ...

    def merge_into(self, source_id: int, target_id: int, at: datetime) -> None:
        """Fold the source host into the target (the same device recorded twice), then delete
        the source.

        Enrollments, certificates, activities and live queries move as they are; queued commands
        move unless the target has the same command; the source's session, profile and agent
        status rows, its osquery node and its policy answers replace the target's. The source is
        the newer record, so its non-null facts (ids, status, OS, inventory, enrollment kind,
        Entra device id, last seen) overwrite the target's; the target keeps its id, uuid, team
        and created_at, and `at` becomes its updated_at. Callers decide which enrollment stays
        active. NotFound when either host is missing; Conflict when
        they are the same host.
        """
        ...

    def search(self, filter: HostFilter) -> tuple[list[HostSummary], int]:
        """One page of the hosts the filter matches, by id, with their team's name, and how
        many match in all. The status filter follows `domain.fleet.host_mdm_status`."""
        ...

    def status_counts(self, team: TeamFilter) -> list[StatusCount]:
        """How many hosts per (team, stored MDM status, enrollment kind), for the team filter.
        Combinations without hosts are absent."""
        ...

    def delete(self, host_id: int) -> bool:
        """Forget the host and everything that is its own: enrollments, certificates, queued
        commands, session, profile and agent statuses, its osquery node (so its agent enrolls
        again), live queries and policy answers. Its activities stay, without host id.
        False when there was no such host."""
        ...


class EnrollmentStore(Protocol):
    def add(self, new: NewEnrollment) -> Enrollment: ...

    def get(self, enrollment_id: int) -> Enrollment | None: ...

    def active_for_host(self, host_id: int) -> Enrollment | None: ...

    def deactivate_for_host(self, host_id: int) -> int:
        """Mark every active enrollment of the host inactive; returns how many."""
        ...

    def list_for_host(self, host_id: int) -> list[Enrollment]:
        """Oldest first."""
        ...

    def renew_nonce(self, enrollment_id: int, nonce: str) -> None:
        """The base64 nonce the device must use for its next OMA-DM Cred; the current one is
        kept as dm_previous_nonce."""
        ...

    def find_active_by_device_id(self, device_id: str) -> Enrollment | None:
        """The newest active enrollment whose DeviceID this is (the SyncML Source LocURI)."""
        ...

    def active_by_device_id(self, device_id: str) -> list[Enrollment]:
        """Every active enrollment with this DeviceID, newest first: a device id is
        self-reported, so two PCs may claim one (docs/host-identity.md)."""
        ...


class CertificateStore(Protocol):
    def add(self, cert: DeviceCertificate) -> DeviceCertificate: ...

    def get(self, serial: str) -> DeviceCertificate | None: ...

    def list_for_host(self, host_id: int) -> list[DeviceCertificate]:
        """Oldest first (by not_before, then insertion)."""
        ...

    def mark_first_use(self, serial: str, at: datetime) -> bool:
        """Set first_used_at if still unset; True when this call set it."""
        ...

    def revoke(self, serial: str, at: datetime, reason: str) -> bool:
        """Revoke an active certificate; True when it was active."""
        ...

    def revoke_active_for_host(
        self, host_id: int, at: datetime, reason: str, *, keep: str | None = None
    ) -> int:
        """Revoke every active certificate of the host except `keep`; returns how many."""
        ...


class Transaction(Protocol):
    hosts: HostStore
    enrollments: EnrollmentStore
    certificates: CertificateStore
    # Management (storage/management_protocols.py).
    inventory: InventoryStore
    sessions: SessionStore
    commands: CommandQueue
    profiles: ProfileStore
    agent: AgentStore
    activities: ActivityStore
    # Enrollment identity (storage/identity_protocols.py).
    teams: TeamStore
    enrollment_tokens: EnrollmentTokenStore
    enrollment_secrets: EnrollmentSecretStore
    # Administration (storage/admin_protocols.py).
    admins: AdminStore
    admin_tokens: AdminTokenStore
    login_failures: LoginFailureStore
    settings: SettingStore
    # The osquery agent (storage/osquery_protocols.py).
    osquery_nodes: AgentNodeStore
    live_queries: LiveQueryStore
    policies: PolicyStore

    def device_state(self, device_id: str, certificate_serial: str | None) -> DeviceState:
        """Every active enrollment claiming `device_id` (newest first, a bounded number) with
        its host, inventory, session and whether commands wait for it, and the record of the
        certificate with this serial: one read for a whole management message."""
        ...


class Storage(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commit on normal exit, roll back on an exception."""
        ...

    def close(self) -> None: ...


def iter_protocols() -> Iterator[type]:
    """The store protocols, for the contract suite's completeness check."""
    yield from (HostStore, EnrollmentStore, CertificateStore)
