"""Windows configuration profiles (issue 4 item 6; protocol.md §8): an admin's SyncML of Add and
Replace commands, delivered to every host of its team in one Atomic, then read back with Get.

Per host: pending (queued) -> verifying (the device applied the Atomic) -> verified (a Get read
the same values) or failed (the device's codes per LocURI). Only what a device reports moves a
status; queuing the same profile again keeps what the host already showed.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from winmdm.domain.management import (
    Command,
    CommandKind,
    CommandState,
    HostCommand,
    HostProfile,
    Profile,
    ProfileStatus,
)
from winmdm.domain.models import Host, MDMStatus
from winmdm.errors import InvalidInput, NotFound
from winmdm.protocol import syncml
from winmdm.protocol.syncml import Cmd, StatusCode
from winmdm.services.syncml_input import parse_admin_syncml
from winmdm.storage.protocols import Storage, Transaction

if TYPE_CHECKING:
    from winmdm.metrics import Metrics

log = logging.getLogger("winmdm.profiles")

MAX_NAME = 255
# ./Vendor/... means the device too (protocol.md §8), but the issue asks for an explicit scope,
# which also tells whoever reads the profile where it applies: write ./Device/Vendor/... instead.
SCOPES = ("./Device/", "./User/")
# DMClient keeps the device enrolled and polling (provider, poll schedule, Unenroll): a profile
# changing it could cut the host off from winmdm.
RESERVED = ("./Device/Vendor/MSFT/DMClient/", "./User/Vendor/MSFT/DMClient/")
PROFILE_COMMANDS: tuple[type, ...] = (syncml.Add, syncml.Replace, syncml.Atomic)
_SKIPPED = {StatusCode.OK, StatusCode.ATOMIC_ROLLBACK_OK}  # not a failure of that command itself
_VALUE_SHOWN = 80  # characters of a value kept in a failure detail

REASONS: dict[int, str] = {
    StatusCode.CANCELLED: "cancelled",
    StatusCode.NOT_EXECUTED: "not executed",
    StatusCode.ATOMIC_ROLLBACK_OK: "rolled back",
    StatusCode.BAD_REQUEST: "bad request",
    StatusCode.INVALID_CREDENTIALS: "invalid credentials",
    StatusCode.FORBIDDEN: "forbidden",
    StatusCode.NOT_FOUND: "not found",
    StatusCode.COMMAND_NOT_ALLOWED: "command not allowed",
    StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED: "optional feature not supported",
    StatusCode.UNSUPPORTED_MEDIA_TYPE: "unsupported type or format",
    StatusCode.ALREADY_EXISTS: "already exists",
    StatusCode.DEVICE_FULL: "device full",
    StatusCode.PERMISSION_DENIED: "permission denied",
    StatusCode.COMMAND_FAILED: "command failed",
    StatusCode.COMMAND_NOT_IMPLEMENTED: "command not implemented",
    StatusCode.ATOMIC_FAILED: "atomic failed",
    StatusCode.ATOMIC_ROLLBACK_FAILED: "atomic rollback failed",
}


def describe(code: int) -> str:
    """'404 not found': a device code with its reason phrase."""
    reason = REASONS.get(code)
    return f"{code} {reason}" if reason else str(code)


@dataclass(frozen=True, slots=True)
class _Setting:
    uri: str
    value: str | None
    format: str | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A profile as the device gets it: its Add/Replace commands, flattened out of any Atomic."""

    commands: tuple[syncml.Add | syncml.Replace, ...]

    @property
    def settings(self) -> list[_Setting]:
        return [
            _Setting(item.target or "", item.data, _format(item, command))
            for command in self.commands
            for item in command.items
        ]

    @property
    def added(self) -> list[str]:
        return [item.target or "" for c in self.commands if isinstance(c, syncml.Add) for item in c.items]

    def delivery(self, as_replace: set[str]) -> syncml.Atomic:
        """One Atomic; Adds that hit 418 before become Replace. CmdIDs are renumbered on delivery."""
        children = []
        for index, command in enumerate(self.commands, start=2):
            if isinstance(command, syncml.Add) and any(i.target in as_replace for i in command.items):
                command = syncml.Replace(cmd_id=index, items=command.items, meta=command.meta)
            children.append(replace(command, cmd_id=index))
        return syncml.Atomic(cmd_id=1, commands=tuple(children))


def _format(item: syncml.Item, command: syncml.ItemCommand) -> str | None:
    for meta in (item.meta, command.meta):
        if meta is not None and meta.format:
            return meta.format
    return None


MAX_DELIVERY_BYTES = 48 * 1024


def parse_profile(text: str) -> _Plan:
    """Validate an admin's profile SyncML; InvalidInput says what is wrong and where."""
    top = parse_admin_syncml(text, allowed=PROFILE_COMMANDS, field="syncml", scopes=SCOPES)
    commands: list[syncml.Add | syncml.Replace] = []
    seen: dict[str, str] = {}
    for where, command in _walk(top):
        if isinstance(command, syncml.Atomic):
            continue
        for item in command.items:
            uri = item.target or ""
            if uri.startswith(RESERVED):
                raise InvalidInput(
                    f"{where}: LocURI {uri!r} is managed by winmdm (DMClient keeps the device enrolled); "
                    "remove it from the profile",
                    field="syncml",
                )
            if uri in seen:
                raise InvalidInput(
                    f"{where}: LocURI {uri!r} is already set by {seen[uri]}; Windows cannot set one node "
                    "twice in one Atomic, keep one of them",
                    field="syncml",
                )
            seen[uri] = where
        commands.append(command)
    plan = _Plan(tuple(commands))
    size = len(syncml.build_fragment(plan.delivery(set())))
    if size > MAX_DELIVERY_BYTES:
        # An Atomic cannot travel in chunks (large objects are per item, outside Atomic), so the
        # whole profile must fit one message under Windows' usual 64 KiB MaxMsgSize.
        raise InvalidInput(
            f"the profile is {size} bytes as sent to Windows; the limit is {MAX_DELIVERY_BYTES}: "
            "split it into several profiles",
            field="syncml",
        )
    return plan


def _walk(commands: Sequence[syncml.Command], parent: str = "") -> Iterator[tuple[str, Any]]:
    for index, command in enumerate(commands, start=1):
        where = f"{parent}command {index} ({command.name})"
        if isinstance(command, syncml.Atomic):
            if parent:
                raise InvalidInput(
                    f"{where}: an Atomic inside an Atomic is not supported by Windows (it answers 500 "
                    "and 507); winmdm wraps the whole profile in one Atomic, so list the commands directly",
                    field="syncml",
                )
            yield where, command
            yield from _walk(command.commands, f"{where}, ")
        else:
            yield where, command


def enrolled_host_ids(tx: Transaction, team_id: int | None) -> list[int]:
    """Hosts of the team (None = No team) whose MDM is on or pending."""
    return tx.hosts.list_ids(team_id=team_id, mdm_statuses=(MDMStatus.ON, MDMStatus.PENDING))


class ProfileService:
    """Profiles for admins and the management session hook that delivers them (SessionHooks)."""

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        metrics: Metrics | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._random = random_bytes
        self._metrics = metrics

    # -- admins -------------------------------------------------------------------------------------
    def add_profile(self, team_id: int | None, name: str, syncml_text: str, *, actor: str | None) -> Profile:
        name = name.strip()
        if not name:
            raise InvalidInput(
                "the profile name is empty; give it a name of 1 to 255 characters", field="name"
            )
        if len(name) > MAX_NAME:
            raise InvalidInput(
                f"the profile name is {len(name)} characters long; the limit is {MAX_NAME}", field="name"
            )
        plan = parse_profile(syncml_text)
        now = self._clock()
        with self._storage.transaction() as tx:
            profile = tx.profiles.create(team_id=team_id, name=name, syncml=syncml_text.strip(), at=now)
            host_ids = enrolled_host_ids(tx, team_id)
            if host_ids:
                self._queue(tx, profile, plan, host_ids, now)
            tx.activities.add(
                "created_windows_profile",
                at=now,
                actor=actor,
                details={"profile_id": profile.id, "profile_name": profile.name, "team_id": team_id},
            )
        return profile

    def get_profile(self, profile_id: int) -> Profile:
        with self._storage.transaction() as tx:
            profile = tx.profiles.get(profile_id)
        if profile is None:
            raise NotFound(f"no profile with id {profile_id}")
        return profile

    def list_profiles(self, team_id: int | None) -> list[Profile]:
        with self._storage.transaction() as tx:
            return tx.profiles.list(team_id=team_id)

    def all_profiles(self) -> list[Profile]:
        """Every team's profiles (No team included)."""
        with self._storage.transaction() as tx:
            return tx.profiles.list(all_teams=True)

    def remove_profile(self, profile_id: int, *, actor: str | None) -> None:
        """Stop the profile and delete from each host what it Added.

        The profile row goes at once (its name is free again, no new host gets it). Deliveries not
        sent yet are dropped; hosts that have it get a Delete of what it Added, and replies to the
        old delivery are ignored because the profile is gone. Replace only sets the value of a node
        the CSP owns; such nodes cannot be deleted (the CSP answers 405), so Replace-only settings
        stay on the device.
        """
        now = self._clock()
        with self._storage.transaction() as tx:
            profile = tx.profiles.get(profile_id)
            if profile is None:
                raise NotFound(f"no profile with id {profile_id}")
            host_ids = []
            for row in tx.profiles.hosts_with_profile(profile_id):
                # Not sent yet: drop the delivery. Sent or done: the device has it, delete it there.
                if row.command_uuid is None or not tx.commands.cancel_pending(row.host_id, row.command_uuid):
                    host_ids.append(row.host_id)
            self._queue_removal(tx, profile, host_ids, now, actor=actor)
            tx.profiles.delete(profile_id)  # host rows go with it
            tx.activities.add(
                "deleted_windows_profile",
                at=now,
                actor=actor,
                details={"profile_id": profile.id, "profile_name": profile.name, "team_id": profile.team_id},
            )

    def hosts_with_profile(self, profile_id: int) -> list[HostProfile]:
        """Each host's status for the profile (the per-host view of one profile)."""
        with self._storage.transaction() as tx:
            if tx.profiles.get(profile_id) is None:
                raise NotFound(f"no profile with id {profile_id}")
            return tx.profiles.hosts_with_profile(profile_id)

    def host_moved(self, tx: Transaction, host: Host, team_id: int | None, now: datetime) -> None:
        """The host leaves its team for `team_id` (None: No team), inside the move's transaction.

        What the old team's profiles added is deleted from the device (a delivery not sent yet is
        just dropped), and the new team's profiles are queued when the host is enrolled, so a
        host always carries its own team's profiles.
        """
        rows = {row.profile_id: row for row in tx.profiles.host_statuses(host.id)}
        for profile in tx.profiles.list(team_id=host.team_id):
            row = rows.get(profile.id)
            if row is None:
                continue
            if row.command_uuid is None or not tx.commands.cancel_pending(host.id, row.command_uuid):
                self._queue_removal(tx, profile, [host.id], now, actor=None)
            tx.profiles.clear_host_status(host.id, profile.id)
        if host.mdm_status not in (MDMStatus.ON, MDMStatus.PENDING):
            return
        for profile in tx.profiles.list(team_id=team_id):
            self._queue(tx, profile, _plan(profile), [host.id], now)

    def host_profiles(self, host_id: int) -> list[HostProfile]:
        """The host's profile statuses; a removed profile shows `removing` until the device answers
        its Delete."""
        with self._storage.transaction() as tx:
            if tx.hosts.get(host_id) is None:
                raise NotFound(f"no host with id {host_id}")
            statuses = tx.profiles.host_statuses(host_id)
            removing = [
                HostProfile(
                    host_id=host_id,
                    profile_id=q.command.context["profile_id"],
                    status=ProfileStatus.REMOVING,
                    detail=f'removing "{q.command.context["profile_name"]}"',
                    command_uuid=q.command.uuid,
                    updated_at=q.queued_at or q.command.created_at,
                )
                for q in tx.commands.list_for_host(host_id)
                if q.command.kind is CommandKind.PROFILE_REMOVE and q.state is not CommandState.DONE
            ]
        return sorted([*statuses, *removing], key=lambda h: h.profile_id)

    # -- SessionHooks -------------------------------------------------------------------------------
    def first_session(self, tx: Transaction, host: Host, now: datetime) -> None:
        """Every profile of the host's team, once per enrollment (a re-enrolled PC may have lost them)."""
        profiles = tx.profiles.list(team_id=host.team_id)
        if not profiles:
            return
        rows = {row.profile_id: row for row in tx.profiles.host_statuses(host.id)}
        for profile in profiles:
            self._queue(tx, profile, _plan(profile), [host.id], now, existing=rows.get(profile.id))

    def alerted(self, tx: Transaction, host: Host, alert: syncml.Alert, now: datetime) -> None:
        return None

    def replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        kind = command.command.kind
        if kind is CommandKind.PROFILE_REMOVE:
            codes = _codes(command)
            failed = [c for c in codes.values() if c not in (StatusCode.OK, StatusCode.NOT_FOUND)]
            if failed:
                log.warning("host %s could not delete profile nodes: %s", host_id, command.raw_reply)
            return
        if kind not in (CommandKind.PROFILE, CommandKind.PROFILE_VERIFY):
            return
        context = command.command.context
        profile = tx.profiles.get(context["profile_id"])
        if profile is None:
            return  # removed since: nothing to record
        row = next((r for r in tx.profiles.host_statuses(host_id) if r.profile_id == profile.id), None)
        if row is None or row.command_uuid != command.command.uuid:
            return  # superseded by a later delivery (or a late answer): only the latest counts
        plan = _plan(profile)
        if kind is CommandKind.PROFILE:
            self._delivered(tx, host_id, command, profile, plan, row, now)
        else:
            self._verified(tx, host_id, command, profile, plan, now)

    # -- delivery -----------------------------------------------------------------------------------
    def _queue_removal(
        self, tx: Transaction, profile: Profile, host_ids: Sequence[int], now: datetime, *, actor: str | None
    ) -> None:
        """Delete from the hosts what the profile Added (children before parents, in a Sequence
        so one 404 does not undo the other Deletes). Replace-only settings stay: CSP-owned nodes
        cannot be deleted."""
        added = _plan(profile).added
        if not added or not host_ids:
            return
        deletes = [
            syncml.Delete(cmd_id=n, items=(syncml.Item(target=uri),))
            for n, uri in enumerate(reversed(added), 2)
        ]
        payload = deletes[0] if len(deletes) == 1 else syncml.Sequence(cmd_id=1, commands=tuple(deletes))
        command = self._create(
            tx,
            CommandKind.PROFILE_REMOVE,
            payload,
            {"profile_id": profile.id, "profile_name": profile.name, "uris": list(reversed(added))},
            now,
            actor=actor,
        )
        self._counted(CommandKind.PROFILE_REMOVE, tx.commands.enqueue(command.id, list(host_ids), now))

    def _queue(
        self,
        tx: Transaction,
        profile: Profile,
        plan: _Plan,
        host_ids: Sequence[int],
        now: datetime,
        *,
        existing: HostProfile | None = None,
        as_replace: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Queue the profile for hosts in one shared command. `existing` is the one host's status:
        a delivery already on its way is not queued twice, and a status for this version of the
        profile is kept (no flapping) until the device answers."""
        status, detail = ProfileStatus.PENDING, None
        if existing is not None and existing.command_uuid is not None:
            previous = tx.commands.get(existing.host_id, existing.command_uuid)
            if previous is not None:
                on_its_way = previous.state is not CommandState.DONE
                if previous.command.kind is CommandKind.PROFILE and on_its_way and not as_replace:
                    return
                if previous.command.context.get("version") == _version(profile):
                    status, detail = existing.status, existing.detail
        command = self._create(
            tx,
            CommandKind.PROFILE,
            plan.delivery(set(as_replace)),
            {"profile_id": profile.id, "version": _version(profile), "as_replace": sorted(as_replace)},
            now,
        )
        self._counted(CommandKind.PROFILE, tx.commands.enqueue(command.id, host_ids, now))
        tx.profiles.set_host_statuses(
            host_ids, profile.id, status, detail=detail, command_uuid=command.uuid, at=now
        )
        self._status(status, len(host_ids))

    def _delivered(
        self,
        tx: Transaction,
        host_id: int,
        command: HostCommand,
        profile: Profile,
        plan: _Plan,
        row: HostProfile,
        now: datetime,
    ) -> None:
        codes = _codes(command)
        top = command.status_code
        ids = command.cmd_ids[1:]  # the Atomic first, then its children in order
        failures: list[tuple[syncml.Add | syncml.Replace, int | None]] = []
        for index, child in enumerate(plan.commands):
            code = codes.get(ids[index], top) if index < len(ids) else top
            if code not in _SKIPPED:
                failures.append((child, code))
        if top == StatusCode.OK and not failures:
            verify = self._queue_verify(tx, host_id, profile, plan, now)
            keep = row.status is ProfileStatus.VERIFIED  # a re-delivery: the Get decides
            status = ProfileStatus.VERIFIED if keep else ProfileStatus.VERIFYING
            tx.profiles.set_host_status(host_id, profile.id, status, detail=None, command_uuid=verify, at=now)
            self._status(status)
            return
        done = set(command.command.context.get("as_replace", ()))
        exists = {
            item.target or ""
            for child, code in failures
            if code == StatusCode.ALREADY_EXISTS and isinstance(child, syncml.Add)
            for item in child.items
        }
        if exists and len(exists) == sum(len(c.items) for c, _ in failures) and not exists & done:
            # 418: the node exists already (set before winmdm managed the PC, or by an earlier
            # delivery): send the profile again with those Adds as Replace, once.
            self._queue(tx, profile, plan, [host_id], now, existing=row, as_replace=done | exists)
            return
        lines = [f"{item.target}: {describe(code or 0)}" for child, code in failures for item in child.items]
        detail = "\n".join(lines) or f"Atomic: {describe(top or 0)}"
        tx.profiles.set_host_status(
            host_id,
            profile.id,
            ProfileStatus.FAILED,
            detail=detail,
            command_uuid=command.command.uuid,
            at=now,
        )
        self._status(ProfileStatus.FAILED)

    def _queue_verify(
        self, tx: Transaction, host_id: int, profile: Profile, plan: _Plan, now: datetime
    ) -> str:
        uris = [s.uri for s in plan.settings]
        gets = [syncml.Get(cmd_id=n, items=(syncml.Item(target=uri),)) for n, uri in enumerate(uris, 2)]
        payload = gets[0] if len(gets) == 1 else syncml.Sequence(cmd_id=1, commands=tuple(gets))
        command = self._create(
            tx,
            CommandKind.PROFILE_VERIFY,
            payload,
            {"profile_id": profile.id, "version": _version(profile), "uris": uris},
            now,
        )
        self._counted(CommandKind.PROFILE_VERIFY, tx.commands.enqueue(command.id, [host_id], now))
        return command.uuid

    def _verified(
        self,
        tx: Transaction,
        host_id: int,
        command: HostCommand,
        profile: Profile,
        plan: _Plan,
        now: datetime,
    ) -> None:
        codes = _codes(command)
        ids = list(command.cmd_ids[1:]) if len(command.cmd_ids) > 1 else list(command.cmd_ids)
        values = {uri: data for r in command.replies if r.cmd == Cmd.RESULTS for uri, data in r.items}
        lines = []
        for index, setting in enumerate(plan.settings):
            code = codes.get(ids[index], command.status_code) if index < len(ids) else command.status_code
            if code == StatusCode.COMMAND_NOT_ALLOWED:
                continue  # a write-only node (e.g. a secret): the device accepted it, it cannot be read
            if code != StatusCode.OK:
                lines.append(f"{setting.uri}: {describe(code or 0)}")
            elif setting.uri not in values:
                lines.append(f"{setting.uri}: the device returned no value")
            elif setting.value is not None and not _same(setting, values[setting.uri]):
                got = _shown(values[setting.uri])
                lines.append(f"{setting.uri}: expected {_shown(setting.value)}, the device has {got}")
        status = ProfileStatus.FAILED if lines else ProfileStatus.VERIFIED
        tx.profiles.set_host_status(
            host_id,
            profile.id,
            status,
            detail="\n".join(lines) or None,
            command_uuid=command.command.uuid,
            at=now,
        )
        self._status(status)

    def _counted(self, kind: CommandKind, hosts: int) -> None:
        """Metrics: commands queued (counted in the transaction that queues them)."""
        if self._metrics is not None:
            self._metrics.queued(kind, hosts)

    def _status(self, status: ProfileStatus, hosts: int = 1) -> None:
        """Metrics: host profile statuses recorded."""
        if self._metrics is not None:
            self._metrics.profile_status(status, hosts)

    def _create(
        self,
        tx: Transaction,
        kind: CommandKind,
        payload: syncml.Command,
        context: dict[str, Any],
        now: datetime,
        *,
        actor: str | None = None,
    ) -> Command:
        return tx.commands.create(
            kind,
            syncml.build_fragment(payload).decode("utf-8"),
            at=now,
            uuid=str(uuid.UUID(bytes=self._random(16), version=4)),
            actor=actor,
            context=context,
        )


def _plan(profile: Profile) -> _Plan:
    return parse_profile(profile.syncml)


def _version(profile: Profile) -> str:
    """Which profile (and which edit of it) a command carries: ids can be reused after a delete
    on SQLite, so the content and times are part of it."""
    parts = (profile.name, profile.created_at.isoformat(), profile.updated_at.isoformat(), profile.syncml)
    text = "\n".join(parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _codes(command: HostCommand) -> dict[int, int]:
    """Status code per CmdID the command (and its children) had when sent."""
    return {r.cmd_ref: r.code for r in command.replies if r.cmd != Cmd.RESULTS and r.code is not None}


def _same(setting: _Setting, reported: str | None) -> bool:
    expected, got = (setting.value or "").strip(), (reported or "").strip()
    if setting.format == syncml.Format.BOOL:
        return expected.lower() == got.lower()
    if setting.format == syncml.Format.INT:
        try:
            return int(expected) == int(got)
        except ValueError:
            return expected == got
    return expected == got


def _shown(value: str | None) -> str:
    value = value or ""
    return repr(value if len(value) <= _VALUE_SHOWN else value[:_VALUE_SHOWN] + "...")
