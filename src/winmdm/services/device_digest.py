"""The OMA-DM MD5 digest check of a session's first message (protocol.md decision 4)."""

from __future__ import annotations

import base64
import binascii
import logging

from winmdm.domain.models import Enrollment
from winmdm.protocol import digest, syncml
from winmdm.protocol.syncml import StatusCode

log = logging.getLogger("winmdm.management")


def check_cred(header: syncml.SyncHdr, enrollment: Enrollment) -> StatusCode | None:
    """None when the digest Cred proves the device; else 407 (missing) or 401 (wrong)."""
    cred = header.cred
    if cred is None:
        return StatusCode.MISSING_CREDENTIALS
    if cred.meta is not None and cred.meta.type not in (None, syncml.AuthType.MD5.value):
        log.warning(
            "device %r sent %s credentials; only MD5 digest is accepted", header.source, cred.meta.type
        )
        return StatusCode.INVALID_CREDENTIALS
    if header.source_name is not None and header.source_name != enrollment.dm_username:
        log.warning("device %r sent credentials for another name", header.source)
        return StatusCode.INVALID_CREDENTIALS
    try:
        nonce = base64.b64decode(enrollment.dm_nonce)
    except (binascii.Error, ValueError):
        nonce = b""
    if not digest.matches(enrollment.dm_password_digest, nonce, cred.data):
        log.warning("device %r refused: digest does not match (wrong secret or stale nonce)", header.source)
        return StatusCode.INVALID_CREDENTIALS
    return None
