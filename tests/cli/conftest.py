"""A real `winmdm serve` (Premium, by a license key signed with a test key) with an admin account,
and the real `winmdm` command run against it as an admin runs it, with its own config folder."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.license import LicenseKeys
from tests.support.server import RunningServer, start_server, winmdm_command
from winmdm.services.accounts import AdminAccounts
from winmdm.storage import SQLStorage, create_engine_for

TIMEOUT = 60
EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"


@dataclass
class AdminCLI:
    """`winmdm` as an admin on their own computer: a config folder of its own, the server's dev
    TLS root trusted through WINMDM_CA_FILE."""

    server: RunningServer
    home: Path
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WINMDM_")}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"))
        env["WINMDM_CA_FILE"] = str(self.server.dev_ca)
        env.update(extra)
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*winmdm_command(), *args],
            env=env or self.env(),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            input=input if input is not None else "",
        )

    def ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, (result.returncode, result.stderr, result.stdout)
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def json(self, *args: str, **kwargs) -> dict:
        return json.loads(self.ok(*args, "--json", **kwargs).stdout)

    def login(self, email: str = EMAIL, password: str = PASSWORD) -> None:
        self.ok("login", "--server", self.server.url, "--email", email, "--password", password)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, problem: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr, result.stdout)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("winmdm: "), lines[0]
    assert problem in lines[0], lines[0]
    return lines[0].removeprefix("winmdm: ")


@pytest.fixture(scope="session")
def license_key(tmp_path_factory) -> LicenseKeys:
    return LicenseKeys.create(tmp_path_factory.mktemp("license"))


def admin_server(root: Path, license_key: LicenseKeys, *, premium: bool) -> RunningServer:
    env = {"WINMDM_LICENSE_PUBLIC_KEY_FILE": str(license_key.public_file)}
    if premium:
        env["WINMDM_LICENSE_KEY"] = license_key.key(days=30)
    server = start_server(root / "data", env)
    # The first admin, as `winmdm admin create` makes it on the server: the accounts service on
    # the server's database.
    engine = create_engine_for(f"sqlite:///{root / 'data' / 'winmdm.db'}")
    try:
        AdminAccounts(SQLStorage(engine), lambda: datetime.now(UTC)).create_admin(
            EMAIL, PASSWORD, "admin", None
        )
    finally:
        engine.dispose()
    return server


@pytest.fixture(scope="module")
def premium_server(tmp_path_factory, license_key) -> Iterator[RunningServer]:
    server = admin_server(tmp_path_factory.mktemp("premium"), license_key, premium=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def signed_in_home(premium_server: RunningServer, tmp_path_factory) -> Path:
    """A config folder with a stored login to the module's server (signing in once per module)."""
    root = tmp_path_factory.mktemp("signed-in")
    AdminCLI(premium_server, root / "home", root).login()
    return root / "home"


@pytest.fixture
def signed_in(premium_server: RunningServer, signed_in_home: Path, tmp_path: Path) -> AdminCLI:
    """The module's signed-in admin, working in this test's folder."""
    return AdminCLI(premium_server, signed_in_home, tmp_path)


@pytest.fixture
def admin(premium_server: RunningServer, tmp_path: Path) -> AdminCLI:
    """A fresh admin computer (no stored login) against the module's Premium server."""
    (tmp_path / "home").mkdir()
    return AdminCLI(premium_server, tmp_path / "home", tmp_path)
