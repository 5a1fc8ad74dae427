"""SyncML (OMA-DM 1.2) namespaces and codes: status codes, alert codes, command names.

protocol.md §8 lists what Windows sends and understands; the numbers are OMA-TS-DM_RepPro §10.
Codes a peer sends that are not members here still round-trip as plain ints (see `status_code`).
"""

from __future__ import annotations

import enum

SYNCML12 = "SYNCML:SYNCML1.2"
SYNCML11 = "SYNCML:SYNCML1.1"
# Matched case-insensitively on parse: samples vary in case, Windows sends SYNCML:SYNCML1.2.
SYNCML_NAMESPACES = frozenset({SYNCML12.lower(), SYNCML11.lower()})
METINF = "syncml:metinf"
MSFT = "http://schemas.microsoft.com/MobileDevice/MDM"
VER_DTD = "1.2"
VER_PROTO = "DM/1.2"


class StatusCode(enum.IntEnum):
    """Status/Data values (OMA-DM RepPro §10; protocol.md §8 'Status codes')."""

    OK = 200
    ACCEPTED = 202  # accepted for processing: async, e.g. an MSI Exec
    AUTHENTICATION_ACCEPTED = 212
    CHUNK_ACCEPTED = 213  # one chunk of a <MoreData/> item received; send the next
    CANCELLED = 214
    NOT_EXECUTED = 215  # e.g. the user declined
    ATOMIC_ROLLBACK_OK = 216
    BAD_REQUEST = 400  # unknown element, no CmdID, unreadable command
    INVALID_CREDENTIALS = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    COMMAND_NOT_ALLOWED = 405  # e.g. Replace of a read-only node
    OPTIONAL_FEATURE_NOT_SUPPORTED = 406
    MISSING_CREDENTIALS = 407
    INCOMPLETE_COMMAND = 412
    REQUEST_ENTITY_TOO_LARGE = 413
    UNSUPPORTED_MEDIA_TYPE = 415  # unsupported Type or Format
    REQUESTED_SIZE_TOO_BIG = 416
    RETRY_LATER = 417
    ALREADY_EXISTS = 418  # Add of an existing node
    DEVICE_FULL = 420
    SIZE_MISMATCH = 424  # reassembled chunks do not match Meta/Size
    PERMISSION_DENIED = 425
    COMMAND_FAILED = 500
    COMMAND_NOT_IMPLEMENTED = 501
    SERVICE_UNAVAILABLE = 503
    ATOMIC_FAILED = 507
    ATOMIC_ROLLBACK_FAILED = 516
    ATOMIC_RESPONSE_TOO_LARGE = 517


class AlertCode(enum.IntEnum):
    """Alert/Data values Windows uses (protocol.md §8 'Alerts')."""

    SERVER_INITIATED_MGMT = 1200  # session after a push
    CLIENT_INITIATED_MGMT = 1201
    NEXT_MESSAGE = 1222  # 'send the next chunk/message' when the other side only sent Status
    SESSION_ABORT = 1223
    CLIENT_EVENT = 1224  # e.g. com.microsoft/MDM/LoginStatus, win32csp_install completion
    NO_END_OF_DATA = 1225  # a chunked item ended without its last chunk
    GENERIC_ALERT = 1226  # CSP async results, unenrollment user request


class Cmd(enum.StrEnum):
    """Element names of SyncBody commands, and the `Cmd` value a Status answers for."""

    SYNC_HDR = "SyncHdr"
    ALERT = "Alert"
    STATUS = "Status"
    RESULTS = "Results"
    GET = "Get"
    ADD = "Add"
    REPLACE = "Replace"
    DELETE = "Delete"
    EXEC = "Exec"
    ATOMIC = "Atomic"
    SEQUENCE = "Sequence"


class AuthType(enum.StrEnum):
    """Cred/Chal Meta Type values (OMA-DM security; protocol.md decision 4)."""

    BASIC = "syncml:auth-basic"
    MD5 = "syncml:auth-md5"


class Format(enum.StrEnum):
    """Meta Format values Windows accepts (protocol.md §8 'Item')."""

    CHR = "chr"
    INT = "int"
    BOOL = "bool"
    B64 = "b64"
    BIN = "bin"
    XML = "xml"
    NODE = "node"
    NULL = "null"
    FLOAT = "float"
    DATE = "date"
    TIME = "time"


def status_code(value: int) -> StatusCode | int:
    """The member for a known code, else the int itself, so unknown codes round-trip."""
    try:
        return StatusCode(value)
    except ValueError:
        return value


def alert_code(value: int) -> AlertCode | int:
    try:
        return AlertCode(value)
    except ValueError:
        return value


def cmd_name(value: str) -> Cmd | str:
    try:
        return Cmd(value)
    except ValueError:
        return value
