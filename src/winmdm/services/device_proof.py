"""Is this OMA-DM message the enrolled device's? (protocol.md decision 4; docs/management.md)

Every message of a session is proven, by one of:
- the enrollment's client certificate, the same one on every message of the session. The
  session's first message also carries a digest Cred (Windows sends it unprompted): it is
  answered 212, after which OMA-DM clients send no Cred for the rest of the session;
- an MD5 digest Cred over the current nonce. It is answered 200 with a Chal carrying a new
  nonce: "If a request includes credentials and the response code to the request is 200, the
  same credential must be sent within the next request. If the Chal element is included ... a
  new digest is created by using the next nonce" (Microsoft, oma-dm-protocol-support.md). So
  Windows proves each message again, and no Cred can be used twice.
A message proven by neither gets 407 (no Cred) or 401 (wrong Cred), each with a new nonce, and
nothing in it is applied.
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
from dataclasses import dataclass

from winmdm.domain.management import SessionProof
from winmdm.domain.models import Enrollment
from winmdm.protocol import digest, syncml
from winmdm.protocol.syncml import StatusCode

log = logging.getLogger("winmdm.management")


class CredCheck(enum.Enum):
    MISSING = "missing"
    WRONG = "wrong"
    CURRENT = "current"  # over the nonce the device was last given
    PREVIOUS = "previous"  # over the nonce before: good for the one-shot unenroll alert only


def check_cred(header: syncml.SyncHdr, enrollment: Enrollment) -> CredCheck:
    """What the message's digest Cred proves about the device of `enrollment`."""
    cred = header.cred
    if cred is None:
        return CredCheck.MISSING
    if cred.meta is not None and cred.meta.type not in (None, syncml.AuthType.MD5.value):
        log.warning(
            "device %r sent %s credentials; only MD5 digest is accepted", header.source, cred.meta.type
        )
        return CredCheck.WRONG
    if header.source_name is not None and header.source_name != enrollment.dm_username:
        return CredCheck.WRONG
    if _matches(enrollment, enrollment.dm_nonce, cred.data):
        return CredCheck.CURRENT
    if enrollment.dm_previous_nonce and _matches(enrollment, enrollment.dm_previous_nonce, cred.data):
        return CredCheck.PREVIOUS
    return CredCheck.WRONG


def _matches(enrollment: Enrollment, nonce_b64: str, presented: str) -> bool:
    try:
        nonce = base64.b64decode(nonce_b64)
    except (binascii.Error, ValueError):
        return False
    return digest.matches(enrollment.dm_password_digest, nonce, presented)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The SyncHdr Status a message gets, and how it was proven (None: refused)."""

    code: StatusCode
    proof: SessionProof | None
    new_nonce: bool  # the Status carries a Chal with a new nonce

    @property
    def proven(self) -> bool:
        return self.proof is not None


def judge(
    cred: CredCheck, *, certificate: bool, session_proof: SessionProof | None, same_certificate: bool
) -> Verdict:
    """`certificate`: the message came with the enrollment's valid certificate;
    `session_proof`: how earlier messages of this session were proven (None: none was);
    `same_certificate`: the certificate is the one that proved the session."""
    if session_proof is SessionProof.CERTIFICATE and certificate and same_certificate:
        return Verdict(StatusCode.OK, SessionProof.CERTIFICATE, new_nonce=False)
    if cred is CredCheck.CURRENT:
        if session_proof is None and certificate:
            return Verdict(StatusCode.AUTHENTICATION_ACCEPTED, SessionProof.CERTIFICATE, new_nonce=True)
        return Verdict(StatusCode.OK, SessionProof.DIGEST, new_nonce=True)
    if cred is CredCheck.MISSING:
        return Verdict(StatusCode.MISSING_CREDENTIALS, None, new_nonce=True)
    return Verdict(StatusCode.INVALID_CREDENTIALS, None, new_nonce=True)
