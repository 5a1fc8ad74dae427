"""The real `winmdm` command, run as an admin runs it: bad settings, first start, second start."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.server import RunningServer, free_port, start_server, winmdm_command
from winmdm import __version__
from winmdm.config import SETTINGS
from winmdm.storage.database import head_revision

TIMEOUT = 60


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any WINMDM_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WINMDM_")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*winmdm_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], setting: str, problem: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"winmdm: {setting}: "), lines[0]
    assert problem in lines[0]


# --- bad settings: one line, exit 2 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("WINMDM_SERVER_URL", "http://x", "must start with https://"),
        ("WINMDM_LISTEN", "everywhere", "must be host:port"),
        ("WINMDM_ENTRA_TENANT_IDS", "contoso", "is not a tenant id"),
        ("WINMDM_ENTRA_JWKS_URL", "http://keys.example.com/", "plain http only on loopback"),
        ("WINMDM_RENEWAL_DAYS", "400", "must be fewer than WINMDM_CERTIFICATE_DAYS"),
        ("WINMDM_LOG_LEVEL", "loud", "must be debug, info, warning or error"),
    ],
)
def test_bad_setting_exits_2_with_one_line(tmp_path: Path, setting: str, value: str, problem: str) -> None:
    data_dir = tmp_path / "data"
    result = run("serve", env=clean_env(WINMDM_DATA_DIR=str(data_dir), **{setting: value}), cwd=tmp_path)
    assert_one_line_error(result, setting, problem)
    assert not data_dir.exists(), "a bad setting must stop winmdm before it creates anything"


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = run("serve", "--config", str(missing), env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, "--config", f"{missing} does not exist")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "winmdm.toml"
    path.write_text('[winmdm]\nserver_url = "https://mdm.example.com\n')
    result = run("serve", "--config", str(path), env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, "--config", "is not valid TOML")


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    path = tmp_path / "winmdm.toml"
    path.write_text('[winmdm]\nserver_ulr = "https://mdm.example.com"\n')
    result = run("serve", "--config", str(path), env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, "--config", "unknown setting 'server_ulr'")


def test_bad_value_in_config_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "winmdm.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nlog_level = "loud"\n')
    result = run("serve", "--config", str(path), env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, "WINMDM_LOG_LEVEL", "must be debug, info, warning or error")


def test_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    # The file alone would start; the environment's bad value must be the one that counts.
    path = tmp_path / "winmdm.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nserver_url = "https://localhost:8443"\n')
    env = clean_env(WINMDM_SERVER_URL="https://localhost/path")
    result = run("serve", "--config", str(path), env=env, cwd=tmp_path)
    assert_one_line_error(result, "WINMDM_SERVER_URL", "plain https://host[:port]")


def test_half_a_device_ca_stops_the_server_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "device-ca.key").write_text("")
    result = run("serve", env=clean_env(WINMDM_DATA_DIR=str(data_dir)), cwd=tmp_path)
    assert_one_line_error(result, "WINMDM_DATA_DIR", "device-ca.crt does not")
    assert (data_dir / "device-ca.key").read_text() == "", "an existing CA file is never replaced"
    assert not (data_dir / "device-ca.crt").exists()


def test_unreachable_database_names_the_setting_without_the_password(tmp_path: Path) -> None:
    env = clean_env(
        WINMDM_DATA_DIR=str(tmp_path / "data"),
        WINMDM_DATABASE_URL="postgresql://winmdm:s3cret-pw@127.0.0.1:1/winmdm",
    )
    result = run("serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "WINMDM_DATABASE_URL", "cannot connect to")
    assert "s3cret-pw" not in result.stderr


# --- first and second start -----------------------------------------------------------------------


def welcome(server: RunningServer) -> str:
    return server.log()


def snapshot(data_dir: Path) -> dict[str, bytes]:
    names = [
        "device-ca.crt",
        "device-ca.key",
        "tls/dev-tls-ca.crt",
        "tls/dev-tls-ca.key",
        "tls/dev-tls-server.crt",
        "tls/dev-tls-server.key",
    ]
    return {name: (data_dir / name).read_bytes() for name in names}


def migrated_revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"hosts", "enrollments"} <= tables, tables
    return revision


def test_first_start_creates_everything_and_second_start_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert not data_dir.exists()

    server = start_server(data_dir, {}, timeout=TIMEOUT, seeded=False)
    try:
        with server.client() as client:  # verifies the dev server certificate against the dev root
            response = client.get(server.discovery_url)
        assert response.status_code == 200
        first_log = welcome(server)
    finally:
        server.stop()

    assert data_dir.is_dir()
    assert stat.S_IMODE((data_dir / "device-ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "tls" / "dev-tls-server.key").stat().st_mode) == 0o600
    assert (data_dir / "device-ca.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    db = data_dir / "winmdm.db"
    assert db.is_file()
    assert migrated_revision(db) == head_revision()
    for name in ("dev-tls-ca.crt", "dev-tls-server.crt", "dev-tls-server.key"):
        assert (data_dir / "tls" / name).is_file(), name
    before = snapshot(data_dir)

    assert f"first start: created {data_dir}" in first_log
    assert f"discovery URL {server.discovery_url}\n" in first_log
    assert (
        f"admin UI      {server.url}/   (REST API {server.url}/api/v1, end users {server.url}/enroll)"
        in first_log
    )
    assert f"certutil -addstore Root {server.dev_ca}\n" in first_log  # whole, not wrapped
    assert "Traceback" not in first_log

    again = start_server(data_dir, {}, timeout=TIMEOUT)
    try:
        with again.client() as client:
            assert client.get(again.discovery_url).status_code == 200
        second_log = welcome(again)
    finally:
        again.stop()

    assert snapshot(data_dir) == before, "the second start must reuse the CA and dev TLS files"
    assert migrated_revision(db) == head_revision()
    assert f"reusing {data_dir}" in second_log
    assert "first start" not in second_log
    assert f"discovery URL {again.discovery_url}\n" in second_log
    assert f"certutil -addstore Root {again.dev_ca}\n" in second_log


def test_welcome_goes_to_stderr(tmp_path: Path) -> None:
    # start_server merges the streams; here stdout and stderr are kept apart.
    port = free_port()
    data_dir = tmp_path / "data"
    env = clean_env(WINMDM_DATA_DIR=str(data_dir), WINMDM_SERVER_URL=f"https://localhost:{port}")
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([*winmdm_command(), "serve"], env=env, stdout=stdout, stderr=stderr)
        try:
            _wait_for(lambda: "Next:" in err.read_text(), process)
        finally:
            process.terminate()
            process.wait(timeout=TIMEOUT)
    text = err.read_text()
    assert f"listening on  https://127.0.0.1:{port}" in text
    assert f"discovery URL https://localhost:{port}/EnrollmentServer/Discovery.svc" in text
    assert "winmdm" not in out.read_text()


def _wait_for(condition, process: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"winmdm serve exited with {process.returncode}")
        time.sleep(0.1)
    raise AssertionError("winmdm serve printed no welcome")


# --- other commands -------------------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = run("--version", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"winmdm, version {__version__}"


def test_settings_lists_every_setting(tmp_path: Path) -> None:
    result = run("settings", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for setting in SETTINGS:
        line = next((ln for ln in lines if ln.startswith(f"{setting.env} ")), None)
        assert line is not None, f"{setting.env} missing from `winmdm settings`"
        assert f"({setting.key}) default {setting.default}" in line
    listed = {ln.split()[0] for ln in lines if ln.startswith("WINMDM_")}
    assert listed == {s.env for s in SETTINGS}
