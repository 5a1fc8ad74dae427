"""The URLs winmdm hands to Windows. All on one host (MS-MDE2 requires policy and enrollment
services to share a host name); Windows learns them only from winmdm's own answers."""

from __future__ import annotations

from dataclasses import dataclass

DISCOVERY_PATH = "/EnrollmentServer/Discovery.svc"
POLICY_PATH = "/EnrollmentServer/Policy.svc"
ENROLLMENT_PATH = "/EnrollmentServer/Enrollment.svc"
AUTHENTICATION_PATH = "/EnrollmentServer/Authenticate"
MANAGEMENT_PATH = "/ManagementServer/MDM.svc"
TERMS_PATH = "/EnrollmentServer/TermsOfUse"  # the "MDM terms of use URL" registered in Entra


@dataclass(frozen=True, slots=True)
class Endpoints:
    base_url: str  # https://host[:port], no trailing slash

    @classmethod
    def from_server_url(cls, server_url: str) -> Endpoints:
        return cls(server_url.rstrip("/"))

    @property
    def discovery(self) -> str:
        return self.base_url + DISCOVERY_PATH

    @property
    def policy(self) -> str:
        return self.base_url + POLICY_PATH

    @property
    def enrollment(self) -> str:
        return self.base_url + ENROLLMENT_PATH

    @property
    def authentication(self) -> str:
        return self.base_url + AUTHENTICATION_PATH

    @property
    def management(self) -> str:
        return self.base_url + MANAGEMENT_PATH

    @property
    def terms_of_use(self) -> str:
        return self.base_url + TERMS_PATH
