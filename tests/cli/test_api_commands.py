"""The real `winmdm` command against a running server's API: login, errors with their exit
codes, the settings rules with the API's own texts, hosts, teams, profiles and commands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
from lxml import etree

from tests.cli.conftest import EMAIL, PASSWORD, AdminCLI, admin_server, assert_one_line_error
from tests.support.bulk import enroll_with_package
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from tests.support.server import RunningServer, free_port
from winmdm.services.settings import (
    MESSAGE_MANUAL_WHILE_MIGRATION,
    MESSAGE_MIGRATION_WHILE_MANUAL,
    MESSAGE_PREMIUM_REQUIRED,
)

NS = {"w": "urn:schemas-microsoft-com:windows-provisioning"}
MANUAL = "mdm.enable_turn_on_windows_mdm_manually"
MIGRATION = "mdm.windows_migration_enabled"
CAMERA = (
    "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Camera/"
    'AllowCamera</LocURI></Target><Meta><Format xmlns="syncml:metinf">int</Format></Meta>'
    "<Data>0</Data></Item></Replace>\n"
)


def credentials(admin: AdminCLI) -> Path:
    return admin.home / ".config" / "winmdm" / "credentials.json"


def api_patch(server: RunningServer, token: str, body: dict) -> httpx.Response:
    with server.client() as client:
        return client.patch(
            f"{server.url}/api/v1/config", json=body, headers={"Authorization": f"Bearer {token}"}
        )


# --- signing in -----------------------------------------------------------------------------------


def test_login_stores_a_private_token_that_logout_ends(admin: AdminCLI) -> None:
    result = admin.ok(
        "login", "--server", admin.server.url + "/", "--email", EMAIL.upper(), "--password", PASSWORD
    )
    assert f"Logged in to {admin.server.url} as {EMAIL} (admin)" in result.stdout
    path = credentials(admin)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["server"] == admin.server.url and stored["ca_file"] == str(admin.server.dev_ca)
    token = stored["token"]
    assert token not in result.stdout + result.stderr

    # The stored server and CA are used with no WINMDM_CA_FILE.
    listed = admin.json("hosts", "list", env=admin.env(WINMDM_CA_FILE=""))
    assert set(listed) == {"hosts", "total", "page", "per_page"} and listed["page"] == 1

    assert "Logged out" in admin.ok("logout").stdout
    assert not path.exists()
    assert_one_line_error(admin.run("hosts", "list"), 2, "no winmdm server: run winmdm login")
    # The session is over on the server too.
    ended = admin.run(
        "hosts", "list", env=admin.env(WINMDM_SERVER_URL=admin.server.url, WINMDM_API_TOKEN=token)
    )
    assert_one_line_error(ended, 5, "")


def test_an_api_token_from_the_environment_needs_no_login(admin: AdminCLI) -> None:
    with admin.server.client() as client:
        login = client.post(
            f"{admin.server.url}/api/v1/login", json={"email": EMAIL, "password": PASSWORD}
        ).json()
        made = client.post(
            f"{admin.server.url}/api/v1/api_tokens",
            json={"name": "ci"},
            headers={"Authorization": f"Bearer {login['token']}"},
        ).json()
    env = admin.env(WINMDM_SERVER_URL=admin.server.url, WINMDM_API_TOKEN=made["token"])
    assert admin.ok("config", "show", "--json", env=env)
    assert not credentials(admin).exists()


def test_sign_in_failures_have_their_exit_codes(admin: AdminCLI) -> None:
    wrong = admin.run("login", "--server", admin.server.url, "--email", EMAIL, "--password", "wrong password")
    assert_one_line_error(wrong, 5, "")
    assert not credentials(admin).exists()

    admin.login()
    port = admin.server.url.rsplit(":", 1)[1]
    # A server the stored login is not for never gets its token.
    other = admin.run("hosts", "list", env=admin.env(WINMDM_SERVER_URL=f"https://127.0.0.1:{port}"))
    assert_one_line_error(other, 5, "not logged in to https://127.0.0.1")
    gone = admin.run(
        "hosts", "list", "--server", f"https://localhost:{free_port()}", env=admin.env(WINMDM_API_TOKEN="x")
    )
    assert_one_line_error(gone, 7, "cannot reach the winmdm server at https://localhost:")


def test_an_untrusted_certificate_says_how_to_trust_it(admin: AdminCLI, tmp_path: Path) -> None:
    env = admin.env(WINMDM_CA_FILE="", WINMDM_SERVER_URL=admin.server.url, WINMDM_API_TOKEN="whatever")
    line = assert_one_line_error(admin.run("hosts", "list", env=env), 7, "is not trusted")
    assert "--ca-file" in line and "WINMDM_CA_FILE" in line
    missing = admin.run("hosts", "list", "--ca-file", str(tmp_path / "none.pem"), env=env)
    assert_one_line_error(missing, 2, "none.pem")


def test_usage_errors_exit_4(admin: AdminCLI) -> None:
    admin.login()
    assert_one_line_error(
        admin.run("hosts", "list", "--status", "sideways"), 4, "Invalid value for '--status'"
    )
    assert_one_line_error(admin.run("teams", "edit", "Nope"), 3, "no team named 'Nope'")


# --- settings: the API's texts, word for word (the seed's "GitOps and API" checklist) -----------


def test_config_set_errors_are_the_api_texts(admin: AdminCLI) -> None:
    admin.login()
    token = json.loads(credentials(admin).read_text())["token"]
    try:
        assert admin.ok("config", "set", MANUAL, "true").stdout == f"{MANUAL} is true.\n"
        assert admin.json("config", "show")["mdm"]["enable_turn_on_windows_mdm_manually"] is True

        line = assert_one_line_error(admin.run("config", "set", MIGRATION, "true"), 4, "")
        api = api_patch(admin.server, token, {"mdm": {"windows_migration_enabled": True}})
        assert api.status_code == 422
        assert line == api.json()["error"]["message"] == MESSAGE_MIGRATION_WHILE_MANUAL

        admin.ok("config", "set", MANUAL, "off")
        admin.ok("config", "set", "windows_migration_enabled", "on")
        line = assert_one_line_error(admin.run("config", "set", MANUAL, "true"), 4, "")
        api = api_patch(admin.server, token, {"mdm": {"enable_turn_on_windows_mdm_manually": True}})
        assert line == api.json()["error"]["message"] == MESSAGE_MANUAL_WHILE_MIGRATION

        unknown = assert_one_line_error(
            admin.run("config", "set", "mdm.nope", "true"), 4, "mdm.nope is not a setting"
        )
        assert unknown == api_patch(admin.server, token, {"mdm": {"nope": True}}).json()["error"]["message"]
        assert_one_line_error(
            admin.run("config", "set", MANUAL, "maybe"), 4, f"{MANUAL} must be true or false."
        )
    finally:
        admin.ok("config", "set", MIGRATION, "false")


def test_a_free_server_refuses_manual_with_the_license_text(tmp_path: Path, license_key) -> None:
    server = admin_server(tmp_path / "free", license_key, premium=False)
    try:
        admin = AdminCLI(server, tmp_path / "home", tmp_path)
        admin.login()
        line = assert_one_line_error(admin.run("config", "set", MANUAL, "true"), 4, "Premium")
        assert line == MESSAGE_PREMIUM_REQUIRED.format(key="enable_turn_on_windows_mdm_manually")
        token = json.loads(credentials(admin).read_text())["token"]
        api = api_patch(server, token, {"mdm": {"enable_turn_on_windows_mdm_manually": True}})
        assert api.json()["error"] == {"code": "premium_required", "message": line, "field": MANUAL}
        assert admin.json("config", "show")["license"]["tier"] == "free"
    finally:
        server.stop()


# --- hosts, teams, profiles, commands -------------------------------------------------------------


def enroll_into(admin: AdminCLI, team: str) -> WindowsDevice:
    """A PC enrolled with a bulk package the CLI made, through its first management session."""
    package = admin.cwd / f"{team}.xml"
    admin.ok("bulk-package", "--team", team, "--out", str(package))
    upn = etree.parse(str(package)).find(".//w:Enrollments/w:UPN", NS)
    device = WindowsDevice(ux_initiated=False, not_in_oobe=True)
    with admin.server.client() as client:
        enroll_with_package(
            client,
            device,
            upn.get("UPN"),
            upn.findtext("w:Secret", namespaces=NS),
            admin.server.discovery_url,
        )
    managed = ManagedDevice(device)
    with managed.client(admin.server.dev_ca) as client:
        managed.session(client)
    return device


def test_hosts_teams_profiles_and_commands(admin: AdminCLI) -> None:
    admin.login()
    team = admin.json("teams", "create", "Kiosks", "--end-user-auth")
    assert team["name"] == "Kiosks" and team["end_user_authentication"] is True
    assert_one_line_error(admin.run("teams", "create", "Kiosks"), 6, 'a team named "Kiosks" already exists')
    assert_one_line_error(admin.run("teams", "create", "No team"), 4, "reserved")
    device = enroll_into(admin, "Kiosks")

    listed = admin.json("hosts", "list", "--team", "Kiosks")
    (host,) = listed["hosts"]
    assert listed["total"] == 1
    assert host["team_name"] == "Kiosks" and host["mdm_status"] == "on_automatic"
    assert admin.json("hosts", "list", "--status", "on_manual", "--team", "Kiosks")["hosts"] == []
    shown = admin.json("hosts", "show", str(host["id"]))
    assert shown["mdm"]["status_label"] == "On (automatic)" and shown["profiles"] == []
    text = admin.ok("hosts", "show", str(host["id"])).stdout
    assert "On (automatic)" in text and "Kiosks" in text
    assert "Kiosks" in admin.ok("hosts", "list").stdout

    profile_file = admin.cwd / "camera.xml"
    profile_file.write_text(CAMERA)
    profile = admin.json("profiles", "add", str(profile_file), "--team", "Kiosks")
    assert profile["name"] == "camera" and profile["team_id"] == team["id"]
    assert_one_line_error(
        admin.run("profiles", "add", str(profile_file), "--team", "Kiosks"), 6, "already exists"
    )
    (listed_profile,) = admin.json("profiles", "list", "--team", str(team["id"]))["profiles"]
    assert listed_profile["id"] == profile["id"]
    assert admin.json("hosts", "show", str(host["id"]))["profiles"][0]["status"] == "pending"

    reboot = admin.json("commands", "reboot", str(host["id"]))
    assert admin.json("commands", "results", reboot["command_uuid"])["results"][0]["state"] == "pending"
    cancelled = admin.run("commands", "wipe", str(host["id"]), input="not the name\n")
    assert cancelled.returncode == 1 and "you did not type" in cancelled.stderr
    assert_one_line_error(admin.run("commands", "reboot", "999999"), 3, "")

    moved = admin.json("hosts", "transfer", "--team", "0", str(host["id"]))
    assert moved["transferred"] == 1
    assert admin.json("hosts", "list", "--team", "Kiosks")["hosts"] == []
    assert [h["id"] for h in admin.json("hosts", "list", "--team", "0")["hosts"]] == [host["id"]]
    back = admin.json("hosts", "transfer", "--team", "Kiosks", "--from-team", "0")
    assert back["host_ids"] == [host["id"]]

    admin.ok("profiles", "delete", str(profile["id"]), "--yes")
    assert admin.json("profiles", "list", "--team", "Kiosks")["profiles"] == []
    refused = admin.run("teams", "delete", "Kiosks")
    assert refused.returncode == 1 and "cancelled" in refused.stderr
    admin.ok("teams", "delete", "Kiosks", "--yes")
    assert admin.json("hosts", "show", str(host["id"]))["team"]["name"] == "No team"
    activities = admin.json("activities", "list", "--per-page", "100")["activities"]
    assert {"created_team", "deleted_team", "mdm_enrolled"} <= {a["type"] for a in activities}
    assert device.enrolled is not None


def test_agent_package_by_url_and_by_upload(signed_in: AdminCLI) -> None:
    admin = signed_in
    code = "{6F7CB29F-1319-4816-B345-0856916EB801}"
    base = ("agent", "package", "set", "--product-code", code, "--version", "1.2.3")
    bad = admin.run(*base, "--url", "http://insecure.example.com/a.msi", "--sha256", "ab" * 32)
    assert_one_line_error(bad, 4, "must be an https:// URL")
    assert_one_line_error(admin.run(*base), 4, "give --url with --sha256, or --file")

    by_url = admin.json(
        *base, "--url", "https://downloads.example.com/a.msi", "--sha256", "AB" * 32, "--install-args", "/qn"
    )
    assert by_url["agent_package"]["sha256"] == "ab" * 32 and by_url["agent_package"]["url"].startswith(
        "https://"
    )
    assert admin.json("agent", "package", "show")["agent_package"]["install_args"] == "/qn"

    msi = admin.cwd / "agent.msi"
    msi.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 512)
    uploaded = admin.json(*base, "--file", str(msi))["agent_package"]
    assert uploaded["uploaded"] is True and uploaded["url"] is None and uploaded["size"] == 520
    text = admin.ok("agent", "package", "show").stdout
    assert code in text and "uploaded MSI (520 bytes)" in text
    not_msi = admin.cwd / "agent.txt"
    not_msi.write_text("hello")
    assert_one_line_error(admin.run(*base, "--file", str(not_msi)), 4, "not an MSI")
