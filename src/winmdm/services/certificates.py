"""Device certificates after issue: is this certificate still the device's credential?

Renewal (MS-WSTEP Renew) issues a new certificate while the old one keeps working, so a device
that never received the answer is not locked out. The first time the new certificate is
presented, its predecessor is revoked: from then on only the new one works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from winmdm.domain.models import CertificateStatus, DeviceCertificate
from winmdm.errors import AuthenticationFailed
from winmdm.pki.ca import DeviceCA
from winmdm.storage.protocols import Storage

log = logging.getLogger("winmdm.certificates")


class DeviceCertificates:
    def __init__(self, *, storage: Storage, ca: DeviceCA, clock: Callable[[], datetime]) -> None:
        self._storage = storage
        self._ca = ca
        self._clock = clock

    def authenticate(self, cert: x509.Certificate) -> DeviceCertificate:
        """The stored record of a presented client certificate, or AuthenticationFailed."""
        now = self._clock()
        serial = format(cert.serial_number, "x")
        if not self._ca.issued_by_me(cert):
            raise AuthenticationFailed(
                f"client certificate {serial} was not issued by this server's device CA"
            )
        with self._storage.transaction() as tx:
            record = tx.certificates.get(serial)
            if record is None:
                raise AuthenticationFailed(f"client certificate {serial} is unknown to this server")
            if record.status is not CertificateStatus.ACTIVE:
                raise AuthenticationFailed(
                    f"client certificate {serial} was revoked ({record.revoked_reason})"
                )
            if not record.not_before <= now < record.not_after:
                raise AuthenticationFailed(
                    f"client certificate {serial} is not valid at {now:%Y-%m-%d %H:%M} UTC"
                )
            first_use = tx.certificates.mark_first_use(serial, now)
            if (
                first_use
                and record.replaces_serial
                and tx.certificates.revoke(record.replaces_serial, now, f"renewed as {serial}")
            ):
                log.info("certificate %s replaced by %s on first use", record.replaces_serial, serial)
            return tx.certificates.get(serial) or record
