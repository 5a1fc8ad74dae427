from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.entra_issuer import EntraIssuer
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.pki.ca import DeviceCA
from winmdm.services.authentication import Authenticator
from winmdm.services.certificates import DeviceCertificates
from winmdm.services.endpoints import Endpoints
from winmdm.services.enrollment import EnrollmentService, EnrollmentSettings

TENANT = "0b9f5c3e-2a4d-4e8f-9a1b-7c6d5e4f3a2b"
SERVER = "https://mdm.corp.example"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def entra() -> Iterator[EntraIssuer]:
    with EntraIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def device_ca() -> DeviceCA:
    return DeviceCA.generate("Test Device CA", datetime.now(UTC) - timedelta(days=1))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(storage, device_ca, entra, clock) -> EnrollmentService:
    verifier = EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url))
    return EnrollmentService(
        storage=storage,
        ca=device_ca,
        authenticator=Authenticator(verifier),
        endpoints=Endpoints.from_server_url(SERVER),
        settings=EnrollmentSettings(),
        clock=clock,
    )


@pytest.fixture
def certificates(storage, device_ca, clock) -> DeviceCertificates:
    return DeviceCertificates(storage=storage, ca=device_ca, clock=clock)


@pytest.fixture
def token(entra, clock) -> Callable[..., str]:
    def make(**kwargs) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        kwargs.setdefault("audience", SERVER)
        kwargs.setdefault("issued_at", clock.now)
        return entra.token(**kwargs)

    return make
