"""OMA-DM management sessions (MS-MDM, protocol.md §8): authenticate the device, read what it
says, answer every command, deliver queued commands within the client's MaxMsgSize.

One client message is handled in one transaction. Session state lives in storage, so any
instance can take the next message, and a retried message gets the same reply.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography import x509

from winmdm.domain.management import CommandKind, CommandReply, HostCommand, Inventory, MDMSession
from winmdm.domain.models import Enrollment, Host, MDMStatus
from winmdm.errors import AuthenticationFailed, WinMDMError
from winmdm.protocol import syncml
from winmdm.protocol.syncml import AlertCode, Cmd, StatusCode
from winmdm.services import device_digest, host_lifecycle, inventory, large_objects
from winmdm.services.certificates import DeviceCertificates
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.management")

# protocol.md decision 5: without MaxMsgSize keep each server message under 64 KiB.
DEFAULT_MAX_MSG_SIZE = 64 * 1024
UNENROLL_ALERT = "com.microsoft:mdm.unenrollment.userrequest"


class SessionHooks(Protocol):
    """What other services (profiles, agent package) do inside a management session's transaction."""

    def first_session(self, tx: Transaction, host: Host, now: datetime) -> None:
        """The host's first session after (re-)enrollment: queue what every new host gets."""
        ...

    def replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        """The device answered `command` (state DONE, replies filled in)."""
        ...

    def alerted(self, tx: Transaction, host: Host, alert: syncml.Alert, now: datetime) -> None:
        """The device sent a client event or generic alert (1224, 1226), e.g. an MSI install result."""
        ...


@dataclass(frozen=True, slots=True)
class ManagementSettings:
    default_max_msg_size: int = DEFAULT_MAX_MSG_SIZE
    max_commands_per_message: int = 50


@dataclass
class _Reply:
    """The server message being built for one client message."""

    header: syncml.SyncHdr
    statuses: list[syncml.Command] = field(default_factory=list)
    commands: list[syncml.Command] = field(default_factory=list)
    next_cmd_id: int = 1

    def cmd_id(self) -> int:
        value = self.next_cmd_id
        self.next_cmd_id += 1
        return value

    def message(self) -> syncml.Message:
        return syncml.Message(header=self.header, commands=(*self.statuses, *self.commands), final=True)


class ManagementService:
    def __init__(
        self,
        *,
        storage: Storage,
        certificates: DeviceCertificates,
        clock: Callable[[], datetime],
        settings: ManagementSettings | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        hooks: Sequence[SessionHooks] = (),
    ) -> None:
        self._hooks = tuple(hooks)
        self._storage = storage
        self._certificates = certificates
        self._clock = clock
        self._settings = settings or ManagementSettings()
        self._random = random_bytes

    def handle(self, body: bytes, *, client_cert: x509.Certificate | None = None) -> bytes:
        """Answer one client message. MalformedMessage when it is not SyncML at all."""
        message = syncml.parse_message(body)
        header = message.header
        now = self._clock()
        with self._storage.transaction() as tx:
            cert_host: int | None = None
            if client_cert is not None:
                try:
                    cert_host = self._certificates.check(tx, client_cert, now).host_id
                except AuthenticationFailed as exc:
                    log.warning("device %r refused: %s", header.source, exc.message)
                    return self._refusal(header, StatusCode.FORBIDDEN)
            enrollment = tx.enrollments.find_active_by_device_id(header.source)
            if enrollment is None:
                log.warning("device %r refused: no active enrollment has this DeviceID", header.source)
                return self._refusal(header, StatusCode.FORBIDDEN)
            if cert_host is not None and cert_host != enrollment.host_id:
                log.warning(
                    "device %r refused: its TLS certificate belongs to host %s, not host %s",
                    header.source,
                    cert_host,
                    enrollment.host_id,
                )
                return self._refusal(header, StatusCode.FORBIDDEN)
            host = tx.hosts.get(enrollment.host_id)
            if host is None:  # deleted while the device still holds its certificate
                return self._refusal(header, StatusCode.FORBIDDEN)
            session = tx.sessions.get(host.id)
            if session is not None and session.session_id == header.session_id:
                if header.msg_id == session.client_msg_id and session.last_response is not None:
                    return session.last_response  # the device retried: same answer, nothing reapplied
                if header.msg_id < session.client_msg_id:
                    return self._refusal(header, StatusCode.BAD_REQUEST)
            else:
                session = MDMSession(
                    host_id=host.id,
                    session_id=header.session_id,
                    client_msg_id=0,
                    server_msg_id=0,
                    last_response=None,
                    authenticated=False,
                    started_at=now,
                    updated_at=now,
                )
            return self._session_message(tx, message, host, enrollment, session, now)

    # -- one message of a session -----------------------------------------------------------
    def _session_message(
        self,
        tx: Transaction,
        message: syncml.Message,
        host: Host,
        enrollment: Enrollment,
        session: MDMSession,
        now: datetime,
    ) -> bytes:
        header = message.header
        server_msg_id = session.server_msg_id + 1
        reply = _Reply(syncml.reply_header(header, msg_id=server_msg_id))
        if not session.authenticated:
            checked = device_digest.check_cred(header, enrollment)
            if checked is not None:  # 407 or 401 with the current nonce; nothing applied
                reply.statuses.append(
                    syncml.header_status(header, checked, chal=syncml.Chal.md5(enrollment.dm_nonce))
                )
                return self._finish(tx, reply, session, header, server_msg_id, now, authenticated=False)
            next_nonce = base64.b64encode(self._random(16)).decode("ascii")
            tx.enrollments.set_nonce(enrollment.id, next_nonce)
            reply.statuses.append(
                syncml.header_status(
                    header,
                    StatusCode.AUTHENTICATION_ACCEPTED,
                    chal=syncml.Chal.md5(next_nonce),
                    cmd_id=reply.cmd_id(),
                )
            )
        else:
            reply.statuses.append(syncml.header_status(header, StatusCode.OK, cmd_id=reply.cmd_id()))
        unenrolled, updated, incoming = self._read_commands(tx, message, host, session, reply, now)
        if updated is not None:
            host = host_lifecycle.same_pc(tx, updated, now)
            session = dataclasses.replace(session, host_id=host.id)
        sent = dict(session.sent)
        pending = list(session.pending_chunks)
        if incoming is not None:
            # The device is sending a large object: ask for its next message (Alert 1222).
            reply.commands.append(syncml.Alert(cmd_id=reply.cmd_id(), data=AlertCode.NEXT_MESSAGE))
        elif not unenrolled:
            pending = self._deliver(
                tx, header, host, session, reply, server_msg_id, sent, pending, enrollment.id, now
            )
        tx.inventory.checked_in(host.id, now)
        if not reply.commands and host.mdm_status is MDMStatus.PENDING and not unenrolled:
            host_lifecycle.turned_on(tx, host, now)
        session = dataclasses.replace(session, sent=sent, incoming=incoming, pending_chunks=tuple(pending))
        return self._finish(tx, reply, session, header, server_msg_id, now, authenticated=True)

    def _read_commands(
        self,
        tx: Transaction,
        message: syncml.Message,
        host: Host,
        session: MDMSession,
        reply: _Reply,
        now: datetime,
    ) -> tuple[bool, Host | None, dict | None]:
        """Answer every client command; ingest replies to ours.

        Returns whether the device unenrolled, the host as updated by inventory (if it was), and
        the large object the device is still sending in chunks (if any).
        """
        header = message.header
        reported: dict[str, str] = {}
        replies: dict[str, list[CommandReply]] = {}
        raw: dict[str, list[str]] = {}
        unenrolled = False
        incoming = session.incoming
        for original in message.commands:
            if isinstance(original, syncml.Status):
                self._collect(session, original.msg_ref, original.cmd_ref, original, replies, raw)
                continue
            previous = incoming
            absorbed = large_objects.absorb(original, incoming)
            incoming = absorbed.incoming
            if incoming is not None and isinstance(original, syncml.Results):
                # Replies to the command whose Results are still arriving wait for the rest.
                ref = f"{original.msg_ref}:{original.cmd_ref}"
                incoming = {**incoming, "ref": ref, "stash": (previous or {}).get("stash", [])}
            elif previous is not None and incoming is None and previous.get("stash"):
                command_uuid = session.sent.get(previous["ref"])
                if command_uuid is not None:
                    for cmd_ref, cmd, code, fragment in previous["stash"]:
                        replies.setdefault(command_uuid, []).append(
                            CommandReply(cmd_ref=cmd_ref, cmd=cmd, code=code)
                        )
                        raw.setdefault(command_uuid, []).append(fragment)
            if absorbed.code is not None or absorbed.command is None:
                code = absorbed.code or StatusCode.BAD_REQUEST
                reply.statuses.append(
                    syncml.command_status(original, code, cmd_id=reply.cmd_id(), msg_ref=header.msg_id)
                )
                continue
            command = absorbed.command
            code: int = StatusCode.OK
            if isinstance(command, syncml.Results):
                self._collect(session, command.msg_ref, command.cmd_ref, command, replies, raw)
                for item in command.items:
                    inventory.inventory_item(item.source or item.target, item.data, reported)
            elif isinstance(command, syncml.Alert):
                unenrolled = self._alert(tx, command, host, now) or unenrolled
            elif isinstance(command, syncml.Replace | syncml.Add):
                for item in command.items:
                    inventory.inventory_item(item.source or item.target, item.data, reported)
            elif isinstance(command, syncml.Unknown):
                code = StatusCode.BAD_REQUEST
            else:
                code = StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED
            reply.statuses.append(
                syncml.command_status(command, code, cmd_id=reply.cmd_id(), msg_ref=header.msg_id)
            )
        updated = tx.inventory.record_inventory(host.id, Inventory(**reported), now) if reported else None
        deferred = session.sent.get(incoming["ref"]) if incoming and "ref" in incoming else None
        for command_uuid, collected in replies.items():
            if command_uuid == deferred:
                stash = [
                    [r.cmd_ref, r.cmd, r.code, f] for r, f in zip(collected, raw[command_uuid], strict=True)
                ]
                incoming = {**incoming, "stash": incoming["stash"] + stash}
                continue
            queued = tx.commands.get(host.id, command_uuid)
            if queued is None or not queued.cmd_ids:
                continue
            top = next(
                (
                    r.code
                    for r in collected
                    if r.cmd_ref == queued.cmd_ids[0]
                    and r.cmd != Cmd.RESULTS
                    and r.code != StatusCode.CHUNK_ACCEPTED
                ),
                None,
            )
            if top is None:
                continue  # only children or Results so far; the top-level Status comes later
            recorded = tx.commands.record_reply(
                host.id,
                queued.command.id,
                status_code=top,
                replies=collected,
                raw_reply="\n".join(raw[command_uuid]),
                at=now,
            )
            if recorded:
                done = tx.commands.get(host.id, command_uuid)
                for hook in self._hooks:
                    hook.replied(tx, host.id, done, now)
        return unenrolled, updated, incoming

    @staticmethod
    def _collect(session, msg_ref, cmd_ref, command, replies, raw) -> None:
        command_uuid = session.sent.get(f"{msg_ref}:{cmd_ref}")
        if command_uuid is None:
            return
        if isinstance(command, syncml.Status):
            entry = CommandReply(cmd_ref=cmd_ref, cmd=str(command.cmd), code=int(command.data))
        else:
            items = tuple((i.source or i.target or "", i.data) for i in command.items)
            entry = CommandReply(cmd_ref=cmd_ref, cmd=Cmd.RESULTS.value, code=None, items=items)
        replies.setdefault(command_uuid, []).append(entry)
        raw.setdefault(command_uuid, []).append(syncml.build_fragment(command).decode("utf-8"))

    def _alert(self, tx: Transaction, alert: syncml.Alert, host: Host, now: datetime) -> bool:
        if int(alert.data) not in (AlertCode.GENERIC_ALERT, AlertCode.CLIENT_EVENT):
            return False
        for hook in self._hooks:
            hook.alerted(tx, host, alert, now)
        if int(alert.data) != AlertCode.GENERIC_ALERT:
            return False
        for item in alert.items:
            kind = item.meta.type if item.meta else None
            if kind == UNENROLL_ALERT:
                host_lifecycle.unenrolled(tx, host, now)
                return True
        return False

    # -- outgoing commands --------------------------------------------------------------------
    def _deliver(
        self,
        tx: Transaction,
        header: syncml.SyncHdr,
        host: Host,
        session: MDMSession,
        reply: _Reply,
        server_msg_id: int,
        sent: dict[str, str],
        pending: list[str],
        enrollment_id: int,
        now: datetime,
    ) -> list[str]:
        """Add queued commands to the reply within the client's MaxMsgSize; returns the chunks of
        a large command still to send in later messages."""
        limit = header.meta.max_msg_size if header.meta and header.meta.max_msg_size else None
        limit = limit or self._settings.default_max_msg_size
        budget = int(limit * 0.9)  # headroom for the device's own accounting
        if pending:
            entry = json.loads(pending.pop(0))
            chunk = syncml.parse_fragment(entry["fragment"].encode("utf-8"))
            numbered, ids = _renumber(chunk, reply)
            reply.commands.append(numbered)
            sent[f"{server_msg_id}:{ids[0]}"] = entry["uuid"]
            if not pending:  # the last chunk carries the command's final Status
                tx.commands.mark_sent(
                    host.id,
                    entry["command_id"],
                    session_id=session.session_id,
                    msg_id=server_msg_id,
                    cmd_ids=ids,
                    at=now,
                )
            return pending
        queued = tx.commands.next_for_host(host.id, session.session_id)  # the one hot-path query
        # Only on a session's first authenticated message: later ones would find what it queued.
        if (
            not session.authenticated
            and host.mdm_status is MDMStatus.PENDING
            and not any(
                q.command.kind is CommandKind.INVENTORY
                and q.command.context.get("enrollment_id") == enrollment_id
                for q in tx.commands.list_for_host(host.id)
            )
        ):
            # Once per enrollment, in its first session: inventory, then what every new host gets.
            self._queue_inventory(tx, host.id, enrollment_id, now)
            for hook in self._hooks:
                hook.first_session(tx, host, now)
            queued = tx.commands.next_for_host(host.id, session.session_id)
        for item in queued[: self._settings.max_commands_per_message]:
            try:
                command = syncml.parse_fragment(item.command.payload.encode("utf-8"))
            except WinMDMError:
                log.error("queued command %s is not SyncML; skipped", item.command.uuid)
                continue
            start = reply.next_cmd_id
            numbered, ids = _renumber(command, reply)
            reply.commands.append(numbered)
            oversized = syncml.encoded_size(reply.message()) > budget
            if oversized:
                reply.commands.pop()
                reply.next_cmd_id = start
                if reply.commands:
                    break  # the rest goes in the next message
                chunks = self._split(command, reply, budget)
                if chunks is None:
                    log.warning(
                        "command %s is larger than MaxMsgSize and cannot be chunked", item.command.uuid
                    )
                    chunks = [command]
                numbered, ids = _renumber(chunks[0], reply)
                reply.commands.append(numbered)
                pending = [
                    json.dumps(
                        {
                            "uuid": item.command.uuid,
                            "command_id": item.command.id,
                            "fragment": syncml.build_fragment(c).decode("utf-8"),
                        }
                    )
                    for c in chunks[1:]
                ]
            tx.commands.mark_sent(
                host.id,
                item.command.id,
                session_id=session.session_id,
                msg_id=server_msg_id,
                cmd_ids=ids,
                at=now,
            )
            for cmd_id in ids:
                sent[f"{server_msg_id}:{cmd_id}"] = item.command.uuid
            if oversized:
                break  # alone in this message (whole, or its first chunk)
        return pending

    @staticmethod
    def _split(command: syncml.Command, reply: _Reply, budget: int) -> list[syncml.Command] | None:
        cmd_id = reply.next_cmd_id

        def fits(candidate: syncml.Command) -> bool:
            trial = dataclasses.replace(candidate, cmd_id=cmd_id)
            message = syncml.Message(header=reply.header, commands=(*reply.statuses, trial), final=True)
            return syncml.encoded_size(message) <= budget

        return large_objects.split(command, fits)

    def _queue_inventory(self, tx: Transaction, host_id: int, enrollment_id: int, now: datetime) -> None:
        get = syncml.Get(cmd_id=1, items=tuple(syncml.Item(target=uri) for uri in inventory.INVENTORY_GETS))
        command = tx.commands.create(
            CommandKind.INVENTORY,
            syncml.build_fragment(get).decode("utf-8"),
            at=now,
            uuid=str(uuid.UUID(bytes=self._random(16), version=4)),
            context={"enrollment_id": enrollment_id},
        )
        tx.commands.enqueue(command.id, [host_id], now)

    # -- replies ----------------------------------------------------------------------------------
    def _finish(
        self,
        tx: Transaction,
        reply: _Reply,
        session: MDMSession,
        header: syncml.SyncHdr,
        server_msg_id: int,
        now: datetime,
        *,
        authenticated: bool,
    ) -> bytes:
        body = syncml.build_message(reply.message())
        tx.sessions.save(
            dataclasses.replace(
                session,
                client_msg_id=header.msg_id,
                server_msg_id=server_msg_id,
                last_response=body,
                authenticated=authenticated,
                updated_at=now,
            )
        )
        return body

    @staticmethod
    def _refusal(header: syncml.SyncHdr, code: StatusCode) -> bytes:
        """A reply that applies nothing: only the SyncHdr Status, then Final."""
        reply = _Reply(syncml.reply_header(header, msg_id=1))
        reply.statuses.append(syncml.header_status(header, code))
        return syncml.build_message(reply.message())


def _renumber(command: syncml.Command, reply: _Reply) -> tuple[syncml.Command, list[int]]:
    """Give a queued command (and its children) this message's next CmdIDs."""
    ids = [reply.cmd_id()]
    if isinstance(command, syncml.Atomic | syncml.Sequence):
        children = []
        for child in command.commands:
            numbered, child_ids = _renumber(child, reply)
            children.append(numbered)
            ids.extend(child_ids)
        return dataclasses.replace(command, cmd_id=ids[0], commands=tuple(children)), ids
    return dataclasses.replace(command, cmd_id=ids[0]), ids
