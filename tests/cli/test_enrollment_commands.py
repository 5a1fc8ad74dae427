"""The real `winmdm deep-link`, `enrollment-secret` and `bulk-package` commands, run by a signed-in
admin against a running server's API; a runtime built in the test on the server's data dir checks
what they did (the enrollment's own secret and token checks)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from lxml import etree

from tests.cli.conftest import AdminCLI, assert_one_line_error
from tests.support.server import RunningServer
from winmdm.config import load_config
from winmdm.domain.identity import EnrollmentSecret
from winmdm.errors import AuthenticationFailed
from winmdm.runtime import Runtime, build
from winmdm.services.bulk import bulk_upn

WPS = "{urn:schemas-microsoft-com:windows-provisioning}"


@dataclass
class Installation:
    cli: AdminCLI
    runtime: Runtime

    @property
    def discovery(self) -> str:
        return self.cli.server.discovery_url

    def run(self, *args: str, **kwargs):
        return self.cli.run(*args, **kwargs)

    def ok(self, *args: str):
        return self.cli.ok(*args)

    def json(self, *args: str) -> dict:
        return self.cli.json(*args)

    def team(self, name: str) -> dict:
        return self.cli.json("teams", "create", name)

    def verify(self, secret: str) -> EnrollmentSecret:
        """What the enrollment does with a package's UsernameToken."""
        with self.runtime.storage.transaction() as tx:
            return self.runtime.bulk.verify(tx, bulk_upn("localhost"), secret)

    def secrets(self, team_id: int | None) -> list[EnrollmentSecret]:
        return self.runtime.bulk.list(team_id)


@pytest.fixture(scope="module")
def server_runtime(premium_server: RunningServer) -> Iterator[Runtime]:
    runtime = build(load_config(premium_server.env), with_tls=False)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def server(signed_in: AdminCLI, server_runtime: Runtime) -> Installation:
    return Installation(signed_in, server_runtime)


def link_params(link: str) -> list[tuple[str, str]]:
    assert link.startswith("ms-device-enrollment:?"), link
    return parse_qsl(link.removeprefix("ms-device-enrollment:?"), strict_parsing=True)


# --- deep-link ------------------------------------------------------------------------------------


def test_deep_link_without_a_user_names_the_discovery_url(server: Installation) -> None:
    result = server.ok("deep-link")
    assert result.stdout == f"ms-device-enrollment:?mode=mdm&servername={quote(server.discovery, safe='')}\n"
    # No OIDC IdP is configured here: the admin is told the user cannot sign in.
    assert "WINMDM_OIDC_ISSUER" in result.stderr and "--preauthorize" in result.stderr


def test_deep_link_url_encodes_the_username(server: Installation) -> None:
    user = "o'brien+mdm@example.com"
    result = server.ok("deep-link", "--username", user)
    (link,) = result.stdout.splitlines()
    assert "&username=o%27brien%2Bmdm%40example.com&" in link
    assert link_params(link) == [("mode", "mdm"), ("username", user), ("servername", server.discovery)]
    assert user in result.stderr and "signs in" in result.stderr

    data = server.json("deep-link", "--username", user)
    assert data == {"link": link, "username": user, "preauthorized": False, "expires_at": None}


def test_preauthorized_deep_link_carries_a_token_for_that_user(server: Installation) -> None:
    user = "first.last@example.com"
    before = datetime.now(UTC)
    result = server.ok("deep-link", "--username", user, "--preauthorize")
    (link,) = result.stdout.splitlines()
    params = dict(link_params(link))
    assert params["username"] == user
    servername = urlsplit(params["servername"])
    assert servername._replace(query="").geturl() == server.discovery
    (name, token), *rest = parse_qsl(servername.query, strict_parsing=True)
    assert (name, rest) == ("token", [])
    verified = server.runtime.enrollment_tokens.verify(token, datetime.now(UTC))
    assert verified.username == user
    assert "works once" in result.stderr and "expires" in result.stderr

    data = server.json("deep-link", "--username", user, "--preauthorize")
    assert data["preauthorized"] is True and data["username"] == user
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(days=6) < expires < datetime.now(UTC) + timedelta(days=8)
    token = dict(parse_qsl(urlsplit(dict(link_params(data["link"]))["servername"]).query))["token"]
    assert server.runtime.enrollment_tokens.verify(token, datetime.now(UTC)).username == user


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--preauthorize",), "give --username"),
        (("--username", "not-a-upn"), "is not a user principal name"),
        (("--username", "a@b.com", "--preauthorize", "--bogus"), "No such option '--bogus'"),
    ],
)
def test_deep_link_bad_input_exits_4(server: Installation, args: tuple[str, ...], problem: str) -> None:
    assert_one_line_error(server.run("deep-link", *args), 4, problem)


def test_commands_need_a_login(admin: AdminCLI) -> None:
    for command in (("deep-link",), ("enrollment-secret", "list"), ("bulk-package", "--out", "p.xml")):
        assert_one_line_error(admin.run(*command), 2, "no winmdm server: run winmdm login")
    assert not (admin.cwd / "p.xml").exists()


# --- enrollment-secret ----------------------------------------------------------------------------


def test_secret_create_list_rotate_revoke_lifecycle(server: Installation) -> None:
    team = server.team("Sales EU")

    created = server.ok("enrollment-secret", "create", "--team", "Sales EU")
    (first,) = created.stdout.splitlines()  # the secret alone: pipe-able
    assert "shown only now" in created.stderr and "stores only its hash" in created.stderr
    assert server.verify(first).team_id == team["id"]

    second = server.json("enrollment-secret", "create", "--team", str(team["id"]))
    assert second["team"] == {"id": team["id"], "name": "Sales EU"} and second["revoked"] == []
    assert server.verify(second["secret"]).id == second["id"]
    assert server.verify(first).team_id == team["id"], "create adds a secret; the others keep working"

    listed = server.ok("enrollment-secret", "list", "--team", "Sales EU")
    records = server.secrets(team["id"])
    assert len(records) == 2
    for record in records:
        assert record.secret_hash not in listed.stdout
    assert first not in listed.stdout and second["secret"] not in listed.stdout

    rotated = server.ok("enrollment-secret", "rotate", "--team", "Sales EU")
    (new,) = rotated.stdout.splitlines()
    assert server.verify(new).team_id == team["id"]
    for old in (first, second["secret"]):
        with pytest.raises(AuthenticationFailed, match="rotated"):
            server.verify(old)
    assert "Revoked secrets" in rotated.stderr

    data = server.json("enrollment-secret", "list", "--team", str(team["id"]))
    assert data["team"] == {"id": team["id"], "name": "Sales EU"}
    assert sorted(s["id"] for s in data["secrets"]) == sorted(r.id for r in server.secrets(team["id"]))
    assert sorted(s["revoked_at"] is None for s in data["secrets"]) == [False, False, True]
    for entry in data["secrets"]:
        assert set(entry) == {"id", "team_id", "created_at", "revoked_at"}

    again = server.json("enrollment-secret", "rotate", "--team", "Sales EU")
    (newest_before,) = [s["id"] for s in data["secrets"] if s["revoked_at"] is None]
    assert again["revoked"] == [newest_before]
    assert server.verify(again["secret"]).team_id == team["id"]

    revoked = server.json("enrollment-secret", "revoke", str(again["id"]), "--team", "Sales EU")
    assert revoked["revoked"] == [again["id"]]
    with pytest.raises(AuthenticationFailed):
        server.verify(again["secret"])


def test_secrets_without_team_are_for_no_team(server: Installation) -> None:
    other = server.team("Other")
    before = len(server.secrets(None))
    secret = server.ok("enrollment-secret", "create").stdout.strip()
    assert server.verify(secret).team_id is None
    assert "No team" in server.ok("enrollment-secret", "list").stdout
    data = server.json("enrollment-secret", "list")
    assert data["team"] is None and len(data["secrets"]) == before + 1
    assert server.json("enrollment-secret", "list", "--team", str(other["id"]))["secrets"] == []


def test_a_team_whose_name_is_digits_is_found_by_name(server: Installation) -> None:
    team = server.team("2024")
    data = server.json("enrollment-secret", "create", "--team", "2024")
    assert data["team_id"] == team["id"]


@pytest.mark.parametrize(
    "command",
    [
        ("enrollment-secret", "create"),
        ("enrollment-secret", "rotate"),
        ("enrollment-secret", "list"),
        ("bulk-package", "--out", "package.xml"),
    ],
)
@pytest.mark.parametrize("team", ["Nope", "999"])
def test_unknown_team_exits_3(server: Installation, command: tuple[str, ...], team: str) -> None:
    before = len(server.secrets(None))
    assert_one_line_error(server.run(*command, "--team", team), 3, f"no team named '{team}'")
    assert len(server.secrets(None)) == before, "nothing is created for an unknown team"
    assert not (server.cli.cwd / "package.xml").exists()


# --- bulk-package ---------------------------------------------------------------------------------


def package_settings(path: Path) -> tuple[str, dict[str, str]]:
    root = etree.parse(str(path)).getroot()
    (upn,) = root.iter(f"{WPS}UPN")
    return upn.get("UPN"), {child.tag.removeprefix(WPS): child.text for child in upn}


def test_bulk_package_writes_a_private_file_with_a_working_secret(server: Installation) -> None:
    team = server.team("Kiosks")
    out = server.cli.cwd / "kiosks.xml"
    result = server.ok("bulk-package", "--team", "Kiosks", "--out", str(out), "--name", "Kiosk PCs")

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    upn, settings = package_settings(out)
    assert upn == bulk_upn("localhost")
    assert settings["AuthPolicy"] == "OnPremise"
    assert settings["DiscoveryServiceFullUrl"] == server.discovery
    assert server.verify(settings["Secret"]).team_id == team["id"]
    assert b"<Name>Kiosk PCs</Name>" in out.read_bytes()
    assert settings["Secret"] not in result.stdout + result.stderr
    for step in ("icd.exe /Build-ProvisioningPackage", ".ppkg", "provisioning package", str(out)):
        assert step in result.stdout, step

    # Without --rotate the first package keeps working; with it, only the newest does.
    second = server.json("bulk-package", "--team", str(team["id"]), "--out", str(out))
    assert second["revoked"] == [] and second["file"] == str(out)
    assert second["upn"] == upn and second["discovery_url"] == server.discovery
    kept = settings["Secret"]
    assert server.verify(kept).team_id == team["id"]
    assert server.verify(package_settings(out)[1]["Secret"]).id == second["secret_id"]

    out.chmod(0o644)  # an existing file is replaced, and private again
    rotated = server.ok("bulk-package", "--team", "Kiosks", "--out", str(out), "--rotate")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    newest = package_settings(out)[1]["Secret"]
    assert server.verify(newest).team_id == team["id"]
    with pytest.raises(AuthenticationFailed):
        server.verify(kept)
    assert "Revoked secrets" in rotated.stdout
    assert [p.name for p in server.cli.cwd.iterdir() if p.name.startswith(".")] == [], "no temp file left"


def test_bulk_package_for_no_team(server: Installation) -> None:
    out = server.cli.cwd / "all.xml"
    data = server.json("bulk-package", "--out", str(out))
    assert data["team"] is None
    assert server.verify(package_settings(out)[1]["Secret"]).team_id is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((), "Missing option '--out'"),
        (("--out", "."), "is a directory"),
        (("--out", "missing/package.xml"), "does not exist"),
        (("--out", "p.xml", "--name", " "), "--name must be 1 to 64 printable characters"),
        (("--out", "p.xml", "--name", "x" * 65), "--name must be 1 to 64 printable characters"),
    ],
)
def test_bulk_package_bad_input_exits_4(server: Installation, args: tuple[str, ...], problem: str) -> None:
    assert_one_line_error(server.run("bulk-package", *args), 4, problem)
