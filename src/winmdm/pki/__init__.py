"""Certificates: the device CA, CSR and renewal-request checks, development TLS material.

Everything here is pure with respect to time and serials: `now` and `serial` are arguments, so
callers (services, tests) decide them. Only key generation draws on OS randomness.
"""

from winmdm.pki.ca import DeviceCA, der, random_serial, thumbprint_sha1
from winmdm.pki.csr import CertificateRequest, parse_csr
from winmdm.pki.renewal import RenewalRequest, parse_renewal_request
from winmdm.pki.tls import DevTLS, ensure_dev_tls

__all__ = [
    "CertificateRequest",
    "DevTLS",
    "DeviceCA",
    "RenewalRequest",
    "der",
    "ensure_dev_tls",
    "parse_csr",
    "parse_renewal_request",
    "random_serial",
    "thumbprint_sha1",
]
