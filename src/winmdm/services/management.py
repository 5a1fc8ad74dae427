"""OMA-DM management sessions (MS-MDM, protocol.md §8): prove the device on every message, read
what it says, answer every command, deliver queued commands.

One client message is handled in one transaction. Session state lives in storage, per
enrollment, so any instance can take the next message, and a retried message gets the same
reply. The session mechanics (CmdIDs, sizes, chunks) are protocol.syncml.session's; the rules
of who may say what are here and in device_proof (docs/management.md).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

from winmdm import log_context
from winmdm.domain.management import (
    CommandKind,
    CommandReply,
    DeviceClaim,
    DeviceState,
    HostCommand,
    Inventory,
    MDMSession,
    SessionProof,
)
from winmdm.domain.models import Enrollment, Host, MDMStatus
from winmdm.errors import AuthenticationFailed, WinMDMError
from winmdm.protocol import syncml
from winmdm.protocol.syncml import AlertCode, Cmd, StatusCode
from winmdm.protocol.syncml import session as mechanics
from winmdm.services import host_lifecycle, inventory
from winmdm.services.certificates import DeviceCertificates
from winmdm.services.device_proof import CredCheck, Verdict, check_cred, judge
from winmdm.services.host_identity import DEFAULT_MERGE_AFTER
from winmdm.storage.protocols import Storage, Transaction

if TYPE_CHECKING:
    from winmdm.metrics import Metrics

log = logging.getLogger("winmdm.management")

# protocol.md decision 5: without the device's MaxMsgSize, commands are packed into messages of
# at most this size; one command larger than it is sent whole (docs/management.md).
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
    # A host still checking in keeps its identity this long against PCs reporting its serial.
    merge_after: timedelta = DEFAULT_MERGE_AFTER


@dataclass(frozen=True, slots=True)
class _Device:
    """The enrollment a message speaks for, what is stored of it, and what it brought to prove it."""

    claim: DeviceClaim
    certificate: str | None  # serial of the presented certificate, when it proves the device
    cred: CredCheck

    @property
    def enrollment(self) -> Enrollment:
        return self.claim.enrollment

    @property
    def host(self) -> Host:
        return self.claim.host


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
        metrics: Metrics | None = None,
    ) -> None:
        self._hooks = tuple(hooks)
        self._metrics = metrics
        self._storage = storage
        self._certificates = certificates
        self._clock = clock
        self._settings = settings or ManagementSettings()
        self._random = random_bytes

    def handle(self, body: bytes, *, client_cert: x509.Certificate | None = None) -> bytes:
        """Answer one client message. MalformedMessage when it is not SyncML at all.

        Only the SyncHdr is read until the message is proven: a stranger's message costs what
        its header costs, whatever it carries after it."""
        message = _small_message(body)
        header = message.header if message is not None else syncml.parse_header(body)
        log_context.bind(device=header.source[:64] or None, session=header.session_id)
        now = self._clock()
        digest = hashlib.sha256(body).digest()
        serial = None if client_cert is None else self._certificates.serial(client_cert)
        with self._storage.transaction() as tx:
            # The one read: every claim on the DeviceID, with host, session and certificate.
            state = tx.device_state(header.source, serial)
            device = self._identify(tx, header, client_cert, state, now)
            if device is None:
                return mechanics.refusal(header, StatusCode.FORBIDDEN)
            log_context.bind(host=device.host.id)
            stored = device.claim.session
            if stored is not None and _is_retry(stored, header, digest, device):
                assert stored.response is not None
                return stored.response  # the device retried: same answer, nothing reapplied
            record = self._session_for(stored, header, device, now)
            if record is None:
                return mechanics.refusal(header, StatusCode.BAD_REQUEST)
            verdict = judge(
                device.cred,
                certificate=device.certificate is not None,
                session_proof=record.proof,
                same_certificate=device.certificate == record.certificate_serial,
            )
            if verdict.proven:
                message = message or syncml.parse_message(body)
                return self._session_message(tx, message, device, record, verdict, digest, now)
            if device.certificate is not None or device.cred is CredCheck.PREVIOUS:
                message = message or syncml.parse_message(body)
                if _unenrolls(message):
                    return self._unenrolled(tx, message, device, now)
            return self._challenge(tx, header, device, record, verdict, continuing=record is stored)

    # -- who is speaking ----------------------------------------------------------------------
    def _identify(
        self,
        tx: Transaction,
        header: syncml.SyncHdr,
        client_cert: x509.Certificate | None,
        state: DeviceState,
        now: datetime,
    ) -> _Device | None:
        """The active enrollment the message speaks for. With a certificate, the certificate's
        own enrollment (it must claim the DeviceID of the message); without, the enrollment of
        that DeviceID whose digest the Cred matches (several PCs may claim one DeviceID:
        docs/host-identity.md). None, logged, when nobody is: the answer is 403."""
        claims = state.claims
        if not claims:
            log.warning("device %r refused: no active enrollment has this DeviceID", header.source)
            return None
        certificate: str | None = None
        if client_cert is not None:
            try:
                presented = self._certificates.judge(tx, client_cert, state.certificate, now)
            except AuthenticationFailed as exc:
                log.warning("device %r refused: %s", header.source, exc.message)
                return None
            claim = next((c for c in claims if c.enrollment.id == presented.record.enrollment_id), None)
            if claim is None:
                log.warning(
                    "device %r refused: its certificate %s belongs to another device or an ended enrollment",
                    header.source,
                    presented.record.serial,
                )
                return None
            if presented.problem is not None:
                # A renewal race or a restored VM snapshot: its digest Cred can still prove it.
                log.warning(
                    "device %r: %s; it must prove itself with its digest credentials",
                    header.source,
                    presented.problem,
                )
            else:
                certificate = presented.record.serial
            cred = check_cred(header, claim.enrollment)
        else:
            checked = [(c, check_cred(header, c.enrollment)) for c in claims]
            claim, cred = min(checked, key=lambda pair: _CRED_RANK[pair[1]])
        return _Device(claim, certificate, cred)

    def _session_for(
        self, record: MDMSession | None, header: syncml.SyncHdr, device: _Device, now: datetime
    ) -> MDMSession | None:
        """The session this message belongs to: the stored one, or a new one when the device
        starts one (a new SessionID, or MsgID 1). None for a message older than the last.

        A new session's MsgIDs start at the device's: one that began with a refused message
        (not stored) never repeats the MsgID of that refusal."""
        if record is not None and record.state.session_id == header.session_id and header.msg_id != 1:
            return record if header.msg_id >= record.state.client_msg_id else None
        return MDMSession(
            enrollment_id=device.enrollment.id,
            key=self._random(16).hex(),
            state=mechanics.SessionState(session_id=header.session_id, server_msg_id=header.msg_id - 1),
            started_at=now,
            updated_at=now,
        )

    def _nonce(self) -> str:
        return base64.b64encode(self._random(16)).decode("ascii")

    def _new_nonce(self, tx: Transaction, enrollment: Enrollment) -> syncml.Chal:
        nonce = self._nonce()
        tx.enrollments.renew_nonce(enrollment.id, nonce)
        return syncml.Chal.md5(nonce)

    def _challenge(
        self,
        tx: Transaction,
        header: syncml.SyncHdr,
        device: _Device,
        record: MDMSession,
        verdict: Verdict,
        *,
        continuing: bool,
    ) -> bytes:
        """407 or 401 with a new nonce: nothing in the message is applied, and the Cred it
        carried (if any) can never be used again. Nor does an unproven message change the stored
        session (a stranger could otherwise end or stall the real one): a session in progress
        only counts the MsgID of this answer."""
        if verdict.code == StatusCode.INVALID_CREDENTIALS:
            log.warning(
                "device %r refused: digest does not match (wrong secret or stale nonce)", header.source
            )
        reply = mechanics.Reply(header, msg_id=record.state.server_msg_id + 1)
        chal = self._new_nonce(tx, device.enrollment)
        reply.status(syncml.header_status(header, verdict.code, chal=chal, cmd_id=reply.cmd_id()))
        if continuing:
            state = dataclasses.replace(record.state, server_msg_id=reply.header.msg_id)
            tx.sessions.save(dataclasses.replace(record, state=state))
        return reply.build()

    def _unenrolled(self, tx: Transaction, message: syncml.Message, device: _Device, now: datetime) -> bytes:
        """The one-shot unenroll alert (1226 unenrollment.userrequest), proven by the device's
        certificate or a Cred over the nonce before the current one (the answer that carried the
        current one may never have reached it). Windows sends it once and expects no answer."""
        header = message.header
        host_lifecycle.unenrolled(tx, device.host, now)
        reply = mechanics.Reply(header, msg_id=1)
        reply.status(syncml.header_status(header, StatusCode.OK, cmd_id=reply.cmd_id()))
        for command in message.commands:
            if isinstance(command, syncml.Alert) and _is_unenroll(command):
                reply.status(
                    syncml.command_status(
                        command, StatusCode.OK, cmd_id=reply.cmd_id(), msg_ref=header.msg_id
                    )
                )
        return reply.build()

    # -- one proven message of a session ------------------------------------------------------
    def _session_message(
        self,
        tx: Transaction,
        message: syncml.Message,
        device: _Device,
        record: MDMSession,
        verdict: Verdict,
        digest: bytes,
        now: datetime,
    ) -> bytes:
        header = message.header
        host = device.host
        state = record.state
        reply = mechanics.Reply(header, msg_id=state.server_msg_id + 1)
        nonce = self._nonce() if verdict.new_nonce else None  # stored with the session, below
        chal = None if nonce is None else syncml.Chal.md5(nonce)
        reply.status(syncml.header_status(header, verdict.code, chal=chal, cmd_id=reply.cmd_id()))
        unenrolled, updated, incoming = self._read_commands(
            tx, message, host, device.claim.inventory, state, reply, now
        )
        host = updated or host
        pending = state.pending
        if incoming is not None or not message.final:
            # The device is still sending its package: ask for the next message, send nothing new.
            reply.next_message()
        elif not unenrolled:
            first = record.proof is None  # the session's first proven message
            pending = self._deliver(tx, header, host, record, reply, first, device.claim, now)
        if not reply.commands and host.mdm_status is MDMStatus.PENDING and not unenrolled:
            host_lifecycle.turned_on(tx, host, now)
        state = dataclasses.replace(
            state,
            client_msg_id=header.msg_id,
            server_msg_id=reply.header.msg_id,
            placed=state.placed + tuple(reply.placed),
            pending=pending,
            incoming=incoming,
        )
        body = reply.build()
        tx.sessions.save_answered(
            dataclasses.replace(
                record,
                state=state,
                proof=verdict.proof,
                certificate_serial=device.certificate if verdict.proof is SessionProof.CERTIFICATE else None,
                request_digest=digest,
                response=body,
                updated_at=now,
            ),
            host_id=host.id,
            seen_at=now,
            nonce=nonce,
        )
        return body

    def _read_commands(
        self,
        tx: Transaction,
        message: syncml.Message,
        host: Host,
        stored: Inventory,
        state: mechanics.SessionState,
        reply: mechanics.Reply,
        now: datetime,
    ) -> tuple[bool, Host | None, mechanics.Assembly | None]:
        """Answer every client command; record the device's replies to ours.

        Returns whether the device unenrolled, the host as updated by inventory (if it was), and
        the large object the device is still sending in chunks (if any)."""
        header = message.header
        replies = _Replies(state.index())
        reported: dict[str, str] = {}
        unenrolled = False
        incoming = state.incoming
        for original in message.commands:
            if isinstance(original, syncml.Status):
                replies.add(original)
                continue
            absorbed = mechanics.absorb(original, incoming)
            incoming = absorbed.incoming
            for held in absorbed.released:
                replies.add(held)
            command = absorbed.command
            code: int = StatusCode.OK
            if absorbed.code is not None or command is None:
                code, command = absorbed.code or StatusCode.BAD_REQUEST, original
            elif isinstance(command, syncml.Results):
                replies.add(command)
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
            reply.status(syncml.command_status(command, code, cmd_id=reply.cmd_id(), msg_ref=header.msg_id))
        updated = None
        if reported and (_changes(stored, reported) or "serial" in reported):
            updated = tx.inventory.record_inventory(host.id, Inventory(**reported), now)
        if updated is not None and "serial" in reported:  # DevDetail: once per enrollment
            updated = host_lifecycle.same_pc(tx, updated, now, self._settings.merge_after)
        if incoming is not None and incoming.answering is not None:
            # The Results of a command are still arriving: its other replies wait for them.
            held = replies.hold(incoming.answering)
            incoming = dataclasses.replace(incoming, held=incoming.held + held)
        for ref, top, answered in replies.complete():
            recorded = tx.commands.record_reply(
                host.id,
                ref.id,
                status_code=top,
                replies=[_command_reply(a) for a in answered],
                raw_reply="\n".join(syncml.build_fragment(a).decode("utf-8") for a in answered),
                at=now,
            )
            if recorded:
                done = tx.commands.get(host.id, ref.uuid)
                for hook in self._hooks:
                    hook.replied(tx, host.id, done, now)
        return unenrolled, updated, incoming

    def _alert(self, tx: Transaction, alert: syncml.Alert, host: Host, now: datetime) -> bool:
        if int(alert.data) not in (AlertCode.GENERIC_ALERT, AlertCode.CLIENT_EVENT):
            return False
        for hook in self._hooks:
            hook.alerted(tx, host, alert, now)
        if _is_unenroll(alert):
            host_lifecycle.unenrolled(tx, host, now)
            return True
        return False

    # -- outgoing commands --------------------------------------------------------------------
    def _deliver(
        self,
        tx: Transaction,
        header: syncml.SyncHdr,
        host: Host,
        record: MDMSession,
        reply: mechanics.Reply,
        first: bool,
        claim: DeviceClaim,
        now: datetime,
    ) -> tuple[mechanics.PendingChunk, ...]:
        """Add queued commands to the reply; returns the chunks of a large command still to send.

        Split only to honour the MaxMsgSize the device sent; without it, commands are packed up
        to the default size and one larger command goes whole (docs/management.md)."""
        if record.state.pending:
            return reply.next_chunk(record.state.pending)
        limit = header.meta.max_msg_size if header.meta and header.meta.max_msg_size else None
        budget = int(limit * 0.9) if limit else self._settings.default_max_msg_size
        enrollment_id = claim.enrollment.id
        # Read the queue only when something waits in it: as the device state said, or queued
        # by this very message (a hook answering a reply or an alert).
        waiting = claim.commands_waiting or tx.commands.queued_here(host.id)
        queued = tx.commands.next_for_host(host.id, record.key) if waiting else []
        if (
            first
            and host.mdm_status is MDMStatus.PENDING
            and not self._inventory_queued(tx, host, enrollment_id)
        ):
            # Once per enrollment, in its first session: inventory, then what every new host gets.
            self._queue_inventory(tx, host.id, enrollment_id, now)
            for hook in self._hooks:
                hook.first_session(tx, host, now)
            queued = tx.commands.next_for_host(host.id, record.key)
        for item in queued[: self._settings.max_commands_per_message]:
            try:
                command = syncml.parse_fragment(item.command.payload.encode("utf-8"))
            except WinMDMError:
                log.error("queued command %s is not SyncML; skipped", item.command.uuid)
                continue
            ref = mechanics.QueuedRef(item.command.id, item.command.uuid)
            ids = reply.place(ref, command, budget=budget, device_limit=limit is not None)
            if ids is None:
                break  # the rest goes in the next message
            tx.commands.mark_sent(
                host.id,
                item.command.id,
                session_key=record.key,
                msg_id=reply.header.msg_id,
                cmd_ids=ids,
                at=now,
            )
            if self._metrics is not None:
                self._metrics.sent(item.command.kind)
            if limit is not None and reply.size > limit:
                log.warning("command %s is larger than the device's MaxMsgSize and cannot be split", ref.uuid)
            if reply.pending or reply.size > budget:
                break  # alone in this message (whole, or its first chunk)
        return reply.pending

    @staticmethod
    def _inventory_queued(tx: Transaction, host: Host, enrollment_id: int) -> bool:
        return any(
            q.command.kind is CommandKind.INVENTORY
            and q.command.context.get("enrollment_id") == enrollment_id
            for q in tx.commands.list_for_host(host.id)
        )

    def _queue_inventory(self, tx: Transaction, host_id: int, enrollment_id: int, now: datetime) -> None:
        get = syncml.Get(cmd_id=1, items=tuple(syncml.Item(target=uri) for uri in inventory.INVENTORY_GETS))
        command = tx.commands.create(
            CommandKind.INVENTORY,
            syncml.build_fragment(get).decode("utf-8"),
            at=now,
            uuid=str(uuid.UUID(bytes=self._random(16), version=4)),
            context={"enrollment_id": enrollment_id},
        )
        queued = tx.commands.enqueue(command.id, [host_id], now)
        if self._metrics is not None:
            self._metrics.queued(CommandKind.INVENTORY, queued)


# Without a certificate, the enrollment whose Cred is best proven speaks (ties: the newest).
_CRED_RANK = {CredCheck.CURRENT: 0, CredCheck.PREVIOUS: 1, CredCheck.WRONG: 2, CredCheck.MISSING: 3}


def _is_retry(record: MDMSession, header: syncml.SyncHdr, digest: bytes, device: _Device) -> bool:
    """The very message answered last (same bytes): the device did not get the answer. A
    certificate-proven answer goes only to that certificate (the bytes carry no Cred)."""
    return (
        record.response is not None
        and record.request_digest == digest
        and record.state.session_id == header.session_id
        and record.state.client_msg_id == header.msg_id
        and (record.proof is not SessionProof.CERTIFICATE or device.certificate == record.certificate_serial)
    )


def _small_message(body: bytes) -> syncml.Message | None:
    """The whole message, when it is no longer than the header window: parsing it costs what
    its header alone would, and is done once. None for a larger or unreadable one (the header
    is then read alone, and the rest only once the device is proven)."""
    if len(body) > syncml.HEADER_WINDOW:
        return None
    try:
        return syncml.parse_message(body)
    except WinMDMError:
        return None


def _changes(stored: Inventory, reported: dict[str, str]) -> bool:
    """Whether the device reported a value other than the stored one (an idle check-in's
    DevInfo usually repeats what is stored: no write then)."""
    return any(getattr(stored, name) != value for name, value in reported.items())


def _is_unenroll(alert: syncml.Alert) -> bool:
    return int(alert.data) == AlertCode.GENERIC_ALERT and any(
        item.meta is not None and item.meta.type == UNENROLL_ALERT for item in alert.items
    )


def _unenrolls(message: syncml.Message) -> bool:
    return any(isinstance(c, syncml.Alert) and _is_unenroll(c) for c in message.commands)


def _command_reply(answer: syncml.Status | syncml.Results) -> CommandReply:
    if isinstance(answer, syncml.Status):
        return CommandReply(cmd_ref=answer.cmd_ref, cmd=str(answer.cmd), code=int(answer.data))
    items = tuple((i.source or i.target or "", i.data) for i in answer.items)
    return CommandReply(cmd_ref=answer.cmd_ref, cmd=Cmd.RESULTS.value, code=None, items=items)


class _Replies:
    """The device's Status and Results for the server's commands in one message, by command."""

    def __init__(self, index: dict[tuple[int, int], mechanics.Placed]) -> None:
        self._index = index
        self._answers: dict[str, list[syncml.Status | syncml.Results]] = {}
        self._refs: dict[str, mechanics.QueuedRef] = {}
        self._tops: dict[str, int] = {}

    def add(self, answer: syncml.Status | syncml.Results) -> None:
        placed = self._index.get((answer.msg_ref or 0, answer.cmd_ref))
        if placed is None:
            return
        key = placed.command.uuid
        self._answers.setdefault(key, []).append(answer)
        self._refs[key] = placed.command
        if placed.top and isinstance(answer, syncml.Status) and answer.data != StatusCode.CHUNK_ACCEPTED:
            self._tops[key] = int(answer.data)

    def hold(self, answering: tuple[int, int]) -> tuple[syncml.Status, ...]:
        """Take out the Statuses for the command whose Results are still arriving."""
        placed = self._index.get(answering)
        if placed is None:
            return ()
        self._tops.pop(placed.command.uuid, None)
        taken = self._answers.pop(placed.command.uuid, [])
        return tuple(a for a in taken if isinstance(a, syncml.Status))

    def complete(self) -> list[tuple[mechanics.QueuedRef, int, list[syncml.Status | syncml.Results]]]:
        """Commands whose own Status came (children and Results alone wait for it)."""
        return [
            (self._refs[key], self._tops[key], answers)
            for key, answers in self._answers.items()
            if key in self._tops
        ]
