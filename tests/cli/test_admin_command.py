"""The real `winmdm admin create|list|delete`, run as an admin runs it on the server (before the
server ever started, too); the accounts are then used the way the server uses them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.server import winmdm_command
from winmdm.config import load_config
from winmdm.domain.admin import Role
from winmdm.errors import AuthenticationFailed
from winmdm.runtime import build

TIMEOUT = 60
PASSWORD = "correct horse battery"


class Admins:
    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WINMDM_")}
        self.env.update(WINMDM_DATA_DIR=str(tmp_path / "data"), WINMDM_SERVER_URL="https://mdm.example.test")

    def run(
        self, *args: str, stdin: str | None = None, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*winmdm_command(), "admin", *args],
            env=env or self.env,
            cwd=self.cwd,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def refused(self, code: int, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("winmdm: "), result.stderr
        return lines[0]


@pytest.fixture
def admins(tmp_path: Path) -> Admins:
    return Admins(tmp_path)


def test_create_list_and_sign_in_with_the_account(admins: Admins) -> None:
    made = admins.ok("create", "--email", "Alice@Corp.Example", "--password", PASSWORD)
    assert made.stdout.strip() == "Created admin alice@corp.example (id 1); they can sign in now."
    assert "database had no winmdm tables" in made.stderr  # the server never ran here yet
    second = admins.ok(
        "create",
        "--email",
        "bob@corp.example",
        "--role",
        "observer",
        "--password",
        "-",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert json.loads(second.stdout) | {"created_at": None} == {
        "id": 2,
        "email": "bob@corp.example",
        "role": "observer",
        "created_at": None,
    }
    assert second.stderr == ""  # the database was there now
    listed = json.loads(admins.ok("list", "--json").stdout)["admins"]
    assert [(a["email"], a["role"]) for a in listed] == [
        ("alice@corp.example", "admin"),
        ("bob@corp.example", "observer"),
    ]
    text = admins.ok("list").stdout
    assert "alice@corp.example" in text and "observer" in text and "EMAIL" in text

    # The server started on the same settings finds the accounts; the passwords work.
    runtime = build(load_config(admins.env), with_tls=False)
    try:
        assert runtime.accounts.login("alice@corp.example", PASSWORD, "127.0.0.1").admin.role is Role.ADMIN
        assert runtime.accounts.login("bob@corp.example", PASSWORD, "127.0.0.1").admin.role is Role.OBSERVER
        with runtime.storage.transaction() as tx:
            created = [a for a in tx.activities.list() if a.type == "created_admin"]
        assert [a.details["email"] for a in reversed(created)] == ["alice@corp.example", "bob@corp.example"]
    finally:
        runtime.close()


def _modes(data: Path) -> dict[str, int]:
    """Mode bits of the data folder and of every database file in it."""
    files = [data, *sorted(data.glob("winmdm.db*"))]
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}


def test_a_new_data_dir_and_database_are_the_servers_users_only(admins: Admins) -> None:
    """They hold the CA key, every device's digest credentials and the admins' password hashes."""
    before = os.umask(0o022)  # the usual umask: what is left to it would be 0755/0644
    try:
        admins.ok("create", "--email", "alice@corp.example", "--password", PASSWORD)
    finally:
        os.umask(before)
    modes = _modes(admins.cwd / "data")
    assert modes.pop("data") == 0o700 and "winmdm.db" in modes
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_install_readable_by_others_is_mended(admins: Admins) -> None:
    admins.ok("create", "--email", "alice@corp.example", "--password", PASSWORD)
    data = admins.cwd / "data"
    data.chmod(0o755)
    for file in data.glob("winmdm.db*"):
        file.chmod(0o644)
    listed = admins.ok("list")
    assert "was readable by others" in listed.stderr
    assert set(_modes(data).values()) <= {0o700, 0o600} and _modes(data)["data"] == 0o700
    # And at the server's start.
    (data / "winmdm.db").chmod(0o640)
    build(load_config(admins.env), with_tls=False).close()
    assert _modes(data)["winmdm.db"] == 0o600


def test_password_omitted_reads_one_line_from_a_pipe(admins: Admins) -> None:
    admins.ok("create", "--email", "alice@corp.example", stdin=PASSWORD + "\r\n")
    runtime = build(load_config(admins.env), with_tls=False)
    try:
        runtime.accounts.login("alice@corp.example", PASSWORD, None)
    finally:
        runtime.close()
    message = admins.refused(4, "create", "--email", "bob@corp.example", stdin="")
    assert "no password on standard input" in message


def test_refusals_are_one_line_with_an_exit_code(admins: Admins) -> None:
    short = admins.refused(4, "create", "--email", "alice@corp.example", "--password", "too short")
    assert "at least 12 characters" in short
    assert "name@example.com" in admins.refused(4, "create", "--email", "alice", "--password", PASSWORD)
    assert "--role" in admins.refused(
        4, "create", "--email", "a@corp.example", "--password", PASSWORD, "--role", "root"
    )
    assert "--email" in admins.refused(4, "create", "--password", PASSWORD)
    admins.ok("create", "--email", "alice@corp.example", "--password", PASSWORD)
    assert "already exists" in admins.refused(
        6, "create", "--email", "ALICE@corp.example", "--password", PASSWORD
    )
    bad_env = dict(admins.env, WINMDM_DATABASE_URL="mysql://u:p@db/winmdm")
    result = admins.run("list", env=bad_env)
    assert result.returncode == 2 and result.stderr.startswith("winmdm: WINMDM_DATABASE_URL")


def test_delete_and_the_last_admin(admins: Admins) -> None:
    admins.ok("create", "--email", "alice@corp.example", "--password", PASSWORD)
    admins.ok("create", "--email", "olga@corp.example", "--password", PASSWORD, "--role", "observer")
    last = admins.refused(6, "delete", "--email", "alice@corp.example")
    assert "alice@corp.example is the last admin" in last and "Make another admin first" in last
    assert "no admin with the email" in admins.refused(3, "delete", "--email", "nobody@corp.example")
    gone = json.loads(admins.ok("delete", "--email", "OLGA@corp.example", "--json").stdout)
    assert gone["email"] == "olga@corp.example" and gone["role"] == "observer"
    admins.ok("create", "--email", "bob@corp.example", "--password", PASSWORD)
    runtime = build(load_config(admins.env), with_tls=False)
    try:
        token = runtime.accounts.login("alice@corp.example", PASSWORD, None).token
        deleted = admins.ok("delete", "--email", "alice@corp.example")
        assert (
            deleted.stdout.strip() == "Deleted admin alice@corp.example (id 1); their tokens no longer work."
        )
        with pytest.raises(AuthenticationFailed):
            runtime.accounts.authenticate(token)
    finally:
        runtime.close()
    assert [a["email"] for a in json.loads(admins.ok("list", "--json").stdout)["admins"]] == [
        "bob@corp.example"
    ]


def test_list_with_no_admins_says_how_to_make_one(admins: Admins) -> None:
    assert "winmdm admin create --email EMAIL" in admins.ok("list").stdout


def _license(tmp_path: Path, days: int) -> dict[str, str]:
    """A license key signed with a keypair of the test's own, and that public key's file."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "license-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    now = datetime.now(UTC)
    claims = {"iss": "winmdm", "tier": "premium", "organization": "Contoso", "iat": now - timedelta(days=400)}
    claims["exp"] = now + timedelta(days=days)
    return {
        "WINMDM_LICENSE_KEY": jwt.encode(claims, key, algorithm="ES256"),
        "WINMDM_LICENSE_PUBLIC_KEY_FILE": str(public),
    }


@pytest.mark.parametrize(
    ("license_days", "expected"),
    [
        (None, ["  license       Free", "  admins        none yet"]),
        (200, ["  license       Premium for Contoso, until "]),
        (
            -3,
            ["  license       Free", "  warning       The license key expired on ", "set WINMDM_LICENSE_KEY"],
        ),
    ],
)
def test_the_start_banner_names_the_license(admins: Admins, tmp_path, capsys, license_days, expected) -> None:
    from winmdm.cli.main import _welcome

    env = dict(admins.env, **(_license(tmp_path, license_days) if license_days is not None else {}))
    runtime = build(load_config(env), with_tls=False)
    try:
        if license_days is not None:
            runtime.accounts.create_admin("alice@corp.example", PASSWORD, Role.ADMIN, None)
        _welcome(runtime)
    finally:
        runtime.close()
    banner = capsys.readouterr().err
    for text in expected:
        assert text in banner, banner
    assert ("none yet" in banner) is (license_days is None)
