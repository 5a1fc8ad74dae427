"""What winmdm keeps about managing a device over OMA-DM (MS-MDM): sessions, the command queue,
inventory, profiles, the agent package and activities."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from winmdm.domain.models import DeviceCertificate, Enrollment, Host
from winmdm.protocol.syncml.session import SessionState


class CommandKind(enum.StrEnum):
    RAW = "raw"  # an admin's own SyncML
    INVENTORY = "inventory"  # Get of DevDetail after the first session
    PROFILE = "profile"
    PROFILE_VERIFY = "profile_verify"
    PROFILE_REMOVE = "profile_remove"
    AGENT_INSTALL = "agent_install"
    AGENT_STATUS = "agent_status"
    REBOOT = "reboot"
    WIPE = "wipe"
    WIPE_PROTECTED = "wipe_protected"
    UNENROLL = "unenroll"


class CommandState(enum.StrEnum):
    """PENDING: not delivered yet (or its session broke before the device answered).
    SENT: delivered in a session, awaiting the device's Status. DONE: the device answered."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    uuid: str
    kind: CommandKind
    payload: str  # one SyncML command element (Add, Replace, Get, Exec, Delete, Atomic, Sequence)
    created_at: datetime
    actor: str | None = None
    # What the command is about (profile id, LocURIs to verify, ...), for the rules that read replies.
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """One Status (and its Results items) the device sent for a command or one of its children."""

    cmd_ref: int
    cmd: str
    code: int | None
    items: tuple[tuple[str, str | None], ...] = ()  # (LocURI, data) from Results


@dataclass(frozen=True, slots=True)
class HostCommand:
    host_id: int
    command: Command
    state: CommandState
    session_key: str | None = None  # MDMSession.key of the session that sent it
    msg_id: int | None = None
    cmd_ids: tuple[int, ...] = ()  # the CmdIDs this command and its children had when sent
    status_code: int | None = None  # the top-level command's Status
    replies: tuple[CommandReply, ...] = ()
    raw_reply: str | None = None  # the device's Status/Results elements as received
    attempts: int = 0
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    done_at: datetime | None = None


class SessionProof(enum.StrEnum):
    """How a session's device proved itself (protocol.md decision 4, docs/management.md)."""

    CERTIFICATE = "certificate"  # its enrollment's client certificate, presented on every message
    DIGEST = "digest"  # an MD5 digest Cred on every message, each over a new nonce


@dataclass(frozen=True, slots=True)
class MDMSession:
    """An OMA-DM session in progress, stored so any instance can take the next message.

    Kept per enrollment, not per host: a PC enrolled again may reuse the SessionIDs of its last
    enrollment, and the new enrollment starts clean (protocol.md decision 4)."""

    enrollment_id: int
    key: str  # unique to this session: the commands it sends are marked with it
    state: SessionState
    proof: SessionProof | None = None  # None until a message of the session was proven
    certificate_serial: str | None = None  # the certificate that proved it (CERTIFICATE)
    request_digest: bytes | None = None  # SHA-256 of the last client message answered
    response: bytes | None = None  # the answer to it, sent again for a byte-identical retry
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """DevInfo (package 1) and DevDetail (winmdm's first Get)."""

    manufacturer: str | None = None
    model: str | None = None
    os_version: str | None = None
    serial: str | None = None
    device_name: str | None = None
    language: str | None = None
    dm_version: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceClaim:
    """An active enrollment claiming a message's DeviceID, with what a management message reads
    of it: its host, the host's inventory, its session, whether commands wait for the host."""

    enrollment: Enrollment
    host: Host
    inventory: Inventory
    session: MDMSession | None
    commands_waiting: bool  # queued, or sent and not yet answered


@dataclass(frozen=True, slots=True)
class DeviceState:
    """All a management message needs to know before it is answered, read in one query."""

    claims: tuple[DeviceClaim, ...]  # newest enrollment first
    certificate: DeviceCertificate | None  # the record of the presented certificate, if any


class ProfileStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    FAILED = "failed"
    REMOVING = "removing"


@dataclass(frozen=True, slots=True)
class Profile:
    id: int
    team_id: int | None  # None is No team
    name: str
    syncml: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HostProfile:
    host_id: int
    profile_id: int
    status: ProfileStatus
    detail: str | None  # the device's codes per LocURI when failed
    command_uuid: str | None
    updated_at: datetime


class AgentStatus(enum.StrEnum):
    PENDING = "pending"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AgentPackage:
    product_code: str  # {GUID}
    version: str
    sha256: str  # hex
    install_args: str
    url: str | None  # external download URL, or None when winmdm serves `content`
    content: bytes | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HostAgent:
    host_id: int
    status: AgentStatus
    last_error: str | None
    command_uuid: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Activity:
    id: int
    type: str  # fleet_enrolled, mdm_enrolled, mdm_unenrolled, ...
    actor: str | None  # the admin, for admin actions
    host_id: int | None
    details: dict[str, Any]
    created_at: datetime
