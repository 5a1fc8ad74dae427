"""The admin API in-process over each database, with admins of every role signed in, devices
enrolled by the Windows emulator, and a license key signed by a test key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from tests.services.conftest import SERVER, TENANT
from tests.services.conftest import clock as clock
from tests.services.conftest import entra as entra
from tests.support.device import WindowsDevice
from tests.support.license import LicenseKeys
from tests.support.omadm import ManagedDevice
from tests.support.seeds import seed_data_dir
from winmdm.config import load_config
from winmdm.domain.admin import Role
from winmdm.runtime import Runtime, build
from winmdm.web.app import create_app

API = "/api/v1"
PASSWORD = "correct horse battery staple"
DISCOVERY = SERVER + "/EnrollmentServer/Discovery.svc"


@pytest.fixture(scope="session")
def license_keys(tmp_path_factory) -> LicenseKeys:
    return LicenseKeys.create(tmp_path_factory.mktemp("license"))


@pytest.fixture
def make_runtime(
    tmp_path, migrated_database_url, entra, clock, license_keys
) -> Iterator[Callable[..., Runtime]]:
    """`make_runtime(premium=True)` builds the server as `winmdm serve` would, on this test's database."""
    built: list[Runtime] = []

    def make(*, premium: bool = False, **env: str) -> Runtime:
        settings = {
            "WINMDM_DATA_DIR": str(seed_data_dir(tmp_path / "data")),
            "WINMDM_DATABASE_URL": migrated_database_url,
            "WINMDM_SERVER_URL": SERVER,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
            "WINMDM_LICENSE_PUBLIC_KEY_FILE": str(license_keys.public_file),
            **env,
        }
        if premium:
            settings["WINMDM_LICENSE_KEY"] = license_keys.key(now=clock.now)
        runtime = build(load_config(settings), clock=clock, with_tls=False)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


class Admins:
    """One signed-in admin per role, and a way to make more."""

    def __init__(self, runtime: Runtime, client: TestClient) -> None:
        self.runtime = runtime
        self.client = client
        self._headers: dict[Role, dict[str, str]] = {}

    def create(self, email: str, role: Role) -> None:
        self.runtime.accounts.create_admin(email, PASSWORD, role, actor=None)

    def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        answer = self.client.post(API + "/login", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def headers(self, role: Role) -> dict[str, str]:
        if role not in self._headers:
            email = f"{role.value}@corp.example"
            self.create(email, role)
            self._headers[role] = self.login(email)
        return self._headers[role]


@dataclass
class Server:
    runtime: Runtime
    client: TestClient
    admins: Admins
    entra: object

    def get(self, path: str, role: Role = Role.ADMIN, **kwargs):
        headers = {**self.admins.headers(role), **kwargs.pop("headers", {})}
        return self.client.get(API + path, headers=headers, **kwargs)

    def post(self, path: str, role: Role = Role.ADMIN, **kwargs):
        headers = {**self.admins.headers(role), **kwargs.pop("headers", {})}
        return self.client.post(API + path, headers=headers, **kwargs)

    def patch(self, path: str, role: Role = Role.ADMIN, **kwargs):
        headers = {**self.admins.headers(role), **kwargs.pop("headers", {})}
        return self.client.patch(API + path, headers=headers, **kwargs)

    def put(self, path: str, role: Role = Role.ADMIN, **kwargs):
        headers = {**self.admins.headers(role), **kwargs.pop("headers", {})}
        return self.client.put(API + path, headers=headers, **kwargs)

    def delete(self, path: str, role: Role = Role.ADMIN, **kwargs):
        headers = {**self.admins.headers(role), **kwargs.pop("headers", {})}
        return self.client.delete(API + path, headers=headers, **kwargs)

    def enroll(
        self, *, manual: bool = True, email: str = "alice@corp.example", session: bool = True
    ) -> ManagedDevice:
        """A Windows PC enrolls through Settings (manual) or OOBE/Autopilot (automatic) with an
        Entra token, then runs its first management session unless `session` is False."""
        now = self.runtime.clock()
        device = (
            WindowsDevice(not_in_oobe=True, ux_initiated=True)
            if manual
            else WindowsDevice(enrollment_type="Device", not_in_oobe=False, ux_initiated=False)
        )
        issuer = self.entra
        device.enroll(
            self.client,
            DISCOVERY,
            email=email,
            token=issuer.token(tenant_id=TENANT, audience=SERVER, issued_at=now, upn=email),
        )
        managed = ManagedDevice(device)
        if session:
            managed.session(self.client)
        return managed

    def host_id(self, managed: ManagedDevice) -> int:
        with self.runtime.storage.transaction() as tx:
            return tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id


@pytest.fixture
def make_server(make_runtime, entra) -> Iterator[Callable[..., Server]]:
    clients: list[TestClient] = []

    def make(**kwargs) -> Server:
        runtime = make_runtime(**kwargs)
        client = TestClient(create_app(runtime), base_url=SERVER, raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return Server(runtime, client, Admins(runtime, client), entra)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def server(make_server) -> Server:
    return make_server()
