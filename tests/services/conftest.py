from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from tests.support.entra_issuer import EntraIssuer
from tests.support.seeds import seed_data_dir
from winmdm.config import load_config
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.pki.ca import DeviceCA
from winmdm.runtime import Runtime, build
from winmdm.services import host_lifecycle
from winmdm.services.authentication import Authenticator
from winmdm.services.certificates import DeviceCertificates
from winmdm.services.endpoints import Endpoints
from winmdm.services.enrollment import EnrollmentService, EnrollmentSettings
from winmdm.web.app import create_app

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


def turned_off(storage, host_id: int, at: datetime) -> None:
    """What the PC's 1226 unenrollment alert does (user turned MDM off in Settings): only then
    may the same PC enroll again into the same host at once (docs/host-identity.md)."""
    with storage.transaction() as tx:
        host_lifecycle.unenrolled(tx, tx.hosts.get(host_id), at)


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


@pytest.fixture
def runtime(tmp_path, migrated_database_url, entra, clock) -> Iterator[Runtime]:
    """The whole server in-process (no TLS) on this test's database, as `winmdm serve` builds it."""
    config = load_config(
        {
            "WINMDM_DATA_DIR": str(seed_data_dir(tmp_path / "data")),
            "WINMDM_DATABASE_URL": migrated_database_url,
            "WINMDM_SERVER_URL": SERVER,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        }
    )
    built = build(config, clock=clock, with_tls=False)
    yield built
    built.close()


@pytest.fixture
def client(runtime) -> Iterator[TestClient]:
    """Windows' side of the wire: the emulators post to the app through this client."""
    with TestClient(create_app(runtime), base_url=SERVER, raise_server_exceptions=True) as test_client:
        yield test_client
