"""Device certificates after issue: is this certificate still the device's credential?

Renewal (MS-WSTEP Renew) issues a new certificate while the old one keeps working, so a device
that never received the answer is not locked out. The first time the new certificate is
presented, its predecessor is revoked: from then on only the new one works.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from winmdm.domain.models import CertificateStatus, DeviceCertificate
from winmdm.errors import AuthenticationFailed
from winmdm.pki.ca import DeviceCA
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.certificates")


@dataclass(frozen=True, slots=True)
class Presented:
    """A certificate this server issued, as presented: `problem` says why it cannot prove its
    device now (revoked, superseded by a renewal or re-enrollment, outside its validity)."""

    record: DeviceCertificate
    problem: str | None


class DeviceCertificates:
    """Checks presented client certificates. Signature checks are remembered by fingerprint
    (bounded): a device presents the same certificate at every check-in."""

    MEMO_SIZE = 4096

    def __init__(self, *, storage: Storage, ca: DeviceCA, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._ca = ca
        self._clock = clock
        self._issued: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, cert: x509.Certificate) -> DeviceCertificate:
        """The stored record of a presented client certificate, or AuthenticationFailed."""
        with self._storage.transaction() as tx:
            presented = self.check(tx, cert, self._clock())
        if presented.problem is not None:
            raise AuthenticationFailed(presented.problem)
        return presented.record

    def check(self, tx: Transaction, cert: x509.Certificate, now: datetime) -> Presented:
        """A presented certificate's record and whether it proves its device now, inside the
        caller's transaction (a management session's). AuthenticationFailed when this server
        never issued it: a stranger's certificate proves nothing and names no device."""
        return self.judge(tx, cert, tx.certificates.get(self.serial(cert)), now)

    @staticmethod
    def serial(cert: x509.Certificate) -> str:
        """The serial a certificate is stored under."""
        return format(cert.serial_number, "x")

    def judge(
        self, tx: Transaction, cert: x509.Certificate, record: DeviceCertificate | None, now: datetime
    ) -> Presented:
        """`check`, with the certificate's record already read (None: none is stored)."""
        serial = self.serial(cert)
        if not self._issued_by_ca(cert):
            raise AuthenticationFailed(
                f"client certificate {serial} was not issued by this server's device CA"
            )
        if record is None:
            raise AuthenticationFailed(f"client certificate {serial} is unknown to this server")
        if record.status is not CertificateStatus.ACTIVE:
            return Presented(record, f"client certificate {serial} was revoked ({record.revoked_reason})")
        if not record.not_before <= now < record.not_after:
            return Presented(record, f"client certificate {serial} is not valid at {now:%Y-%m-%d %H:%M} UTC")
        if record.first_used_at is None and tx.certificates.mark_first_use(serial, now):
            if record.replaces_serial and tx.certificates.revoke(
                record.replaces_serial, now, f"renewed as {serial}"
            ):
                log.info("certificate %s replaced by %s on first use", record.replaces_serial, serial)
            record = dataclasses.replace(record, first_used_at=now)
        return Presented(record, None)

    def _issued_by_ca(self, cert: x509.Certificate) -> bool:
        key = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
        with self._lock:
            known = self._issued.get(key)
        if known is not None:
            return known
        issued = self._ca.issued_by_me(cert)
        with self._lock:
            self._issued[key] = issued
            while len(self._issued) > self.MEMO_SIZE:
                self._issued.popitem(last=False)
        return issued
