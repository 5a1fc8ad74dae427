"""The one error hierarchy of winmdm.

Every error carries a message written for the person who must act on it. Each edge translates
once: SOAP faults and SyncML statuses for Windows (web/), one JSON shape for the API, one stderr
line and an exit code for the CLI. Nothing here knows about HTTP or SOAP.
"""

from __future__ import annotations


class WinMDMError(Exception):
    """Root of every error winmdm raises on purpose."""

    def __init__(self, message: str, *, detail_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # An MS-MDE2 DeviceEnrollmentServiceError ErrorType (e.g. "NotEligibleToRenew"), when one fits.
        self.detail_type = detail_type


class ConfigError(WinMDMError):
    """A setting is missing or wrong; the message names the setting and what is wrong."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class MalformedMessage(WinMDMError):
    """A client sent bytes that are not the message the protocol expects (MS-MDE2 MessageFormat)."""


class HostileInput(MalformedMessage):
    """XML that tries entities, DTDs, excessive depth or size: refused before it is read."""


class InvalidSecurity(WinMDMError):
    """The WS-Security header is missing or cannot be read (MS-MDE2 a:InvalidSecurity)."""


class AuthenticationFailed(WinMDMError):
    """The credential was read but does not prove who the caller is (MS-MDE2 s:Authentication)."""


class AuthorizationFailed(WinMDMError):
    """The caller is known but not allowed to do this (MS-MDE2 s:Authorization)."""


class CertificateRequestRejected(WinMDMError):
    """The CSR or PKCS#7 renewal request cannot be signed (MS-MDE2 s:CertificateRequest)."""


class EnrollmentServerError(WinMDMError):
    """The server could not complete the enrollment, e.g. storage failed (s:EnrollmentServer)."""


class InvalidInput(WinMDMError):
    """What a person sent is wrong; `field` names where (an API field, a file line)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(WinMDMError):
    """The change clashes with what exists (a duplicate name, a state that forbids it)."""


class NotFound(WinMDMError):
    """The thing asked for does not exist."""


class UpstreamUnavailable(WinMDMError):
    """A service winmdm depends on (an IdP's key endpoint) did not answer."""


class RateLimited(WinMDMError):
    """Too many attempts (admin sign-in); `retry_after` says how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PremiumRequired(InvalidInput):
    """A Premium feature was asked of a Free server; the message names Premium and the license."""
