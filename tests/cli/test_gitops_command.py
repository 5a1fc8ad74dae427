"""The real `winmdm gitops apply` and `generate` against a running server: plans, dry runs, apply
twice = nothing, generate -> apply round trip, and errors at file, line and key with the API's
own texts (the seed's "GitOps and API" checklist)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.cli.conftest import AdminCLI, admin_server, assert_one_line_error
from winmdm.services.settings import (
    MESSAGE_MANUAL_WHILE_MIGRATION,
    MESSAGE_MIGRATION_WHILE_MANUAL,
    MESSAGE_PREMIUM_REQUIRED,
)

CAMERA = (
    "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Camera/"
    'AllowCamera</LocURI></Target><Meta><Format xmlns="syncml:metinf">int</Format></Meta>'
    "<Data>0</Data></Item></Replace>\n"
)
COOKIES = CAMERA.replace("Camera/AllowCamera", "Browser/AllowCookies")


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def repo(root: Path, *, manual: bool = True, migration: bool = False) -> Path:
    write(root, "lib/camera.xml", CAMERA)
    write(root, "lib/cookies.xml", COOKIES)
    write(
        root,
        "default.yml",
        f"""
        controls:
          windows_enabled_and_configured: true
          windows_migration_enabled: {str(migration).lower()}
          enable_turn_on_windows_mdm_manually: {str(manual).lower()}
        profiles:
          - path: lib/camera.xml
        """,
    )
    write(
        root,
        "teams/sales.yml",
        """
        name: Sales
        controls:
          enable_end_user_authentication: false
        profiles:
          - path: ../lib/camera.xml
          - path: ../lib/cookies.xml
            name: No cookies
        """,
    )
    write(root, "teams/kiosks.yml", "name: Kiosks\n")
    return root


def apply(admin: AdminCLI, *args: str):
    return admin.run("gitops", "apply", "-f", "default.yml", "teams/kiosks.yml", "teams/sales.yml", *args)


def test_dry_run_then_apply_then_apply_again_changes_nothing(signed_in: AdminCLI) -> None:
    admin = signed_in
    repo(admin.cwd)
    admin.ok("gitops", "apply", "-f", "default.yml")  # a known start: no teams, No team's camera
    admin.ok("config", "set", "mdm.enable_turn_on_windows_mdm_manually", "false")

    dry = apply(admin, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Dry run: 5 changes, nothing applied." in dry.stdout
    for line in ("controls.enable_turn_on_windows_mdm_manually", "create  team", "No cookies"):
        assert line in dry.stdout
    assert {t["name"] for t in admin.json("teams", "list")["teams"]} == set()

    done = apply(admin)
    assert "Applied 5 changes." in done.stdout, done.stdout + done.stderr
    teams = {t["name"]: t for t in admin.json("teams", "list")["teams"]}
    assert set(teams) == {"Sales", "Kiosks"}
    names = [p["name"] for p in admin.json("profiles", "list", "--team", "Sales")["profiles"]]
    assert sorted(names) == ["No cookies", "camera"]
    assert admin.json("config", "show")["mdm"]["enable_turn_on_windows_mdm_manually"] is True

    activities = admin.json("activities", "list", "--per-page", "1")["total"]
    again = apply(admin)
    assert again.stdout == "Nothing to change: the server already matches the files.\n", again.stderr
    assert admin.json("activities", "list", "--per-page", "1")["total"] == activities, "no new activity"

    plan = admin.json("gitops", "apply", "-f", "default.yml", "teams/sales.yml", "--dry-run")
    assert plan == {
        "plan": [
            {
                "action": "delete",
                "kind": "team",
                "name": "Kiosks",
                "detail": "its hosts move to No team; its enrollment secrets stop working",
            }
        ],
        "applied": False,
    }


def test_team_files_alone_change_only_their_teams(signed_in: AdminCLI) -> None:
    admin = signed_in
    repo(admin.cwd)
    apply(admin)
    write(admin.cwd, "teams/new.yml", "name: New\nprofiles:\n  - path: ../lib/cookies.xml\n")
    result = admin.ok("gitops", "apply", "-f", "teams/new.yml")
    assert "only these teams change" in result.stderr
    assert {t["name"] for t in admin.json("teams", "list")["teams"]} == {"Sales", "Kiosks", "New"}
    # With the default file, a team in no file is deleted.
    files = ("-f", "default.yml", "teams/kiosks.yml", "teams/sales.yml")
    assert admin.json("gitops", "apply", *files)["plan"] == [
        {
            "action": "delete",
            "kind": "team",
            "name": "New",
            "detail": "its hosts move to No team; its enrollment secrets stop working; "
            "its 1 profile(s) are removed from its hosts",
        }
    ]
    assert {t["name"] for t in admin.json("teams", "list")["teams"]} == {"Sales", "Kiosks"}


def test_generate_then_apply_is_an_empty_plan(signed_in: AdminCLI) -> None:
    admin = signed_in
    repo(admin.cwd)
    apply(admin)
    out = admin.cwd / "generated"
    written = admin.ok("gitops", "generate", "--dir", str(out)).stdout.split()
    assert str(out / "default.yml") in written and str(out / "teams" / "sales.yml") in written
    default = (out / "default.yml").read_text()
    assert "enable_turn_on_windows_mdm_manually: true" in default, "Premium: the Premium controls are written"
    assert (out / "lib" / "camera.xml").read_text() == CAMERA
    files = ["-f", "default.yml", *sorted(str(p.relative_to(out)) for p in (out / "teams").glob("*.yml"))]
    again = AdminCLI(admin.server, admin.home, out).ok("gitops", "apply", *files)
    assert again.stdout == "Nothing to change: the server already matches the files.\n"

    refused = admin.run("gitops", "generate", "--dir", str(out))
    assert_one_line_error(refused, 4, "already holds GitOps files")
    (out / "teams" / "stale.yml").write_text("name: Stale\n")
    admin.ok("gitops", "generate", "--dir", str(out), "--force")
    assert not (out / "teams" / "stale.yml").exists()


def test_file_errors_name_file_line_and_key(signed_in: AdminCLI) -> None:
    admin = signed_in
    repo(admin.cwd)
    write(admin.cwd, "default.yml", "controls:\n  windows_enabled_and_configured: true\n  manual: true\n")
    line = assert_one_line_error(admin.run("gitops", "apply", "-f", "default.yml"), 4, "")
    assert line.startswith("default.yml:3: controls.manual: unknown key; allowed here: ")

    write(admin.cwd, "lib/bad.xml", "<Get><CmdID>1</CmdID></Get>")
    write(
        admin.cwd,
        "teams/bad.yml",
        "name: Bad\nprofiles:\n  - path: ../lib/camera.xml\n  - path: ../lib/bad.xml\n",
    )
    line = assert_one_line_error(admin.run("gitops", "apply", "-f", "teams/bad.yml"), 4, "")
    assert line.startswith("teams/bad.yml:4: profiles[1].path (../lib/bad.xml): "), line
    assert "Bad" not in {t["name"] for t in admin.json("teams", "list")["teams"]}, "nothing applied"

    write(admin.cwd, "teams/bad.yml", "name: No team\n")
    line = assert_one_line_error(admin.run("gitops", "apply", "-f", "teams/bad.yml"), 4, "reserved")
    assert line.startswith("teams/bad.yml:1: name: ")


def test_the_settings_rules_with_the_api_texts_at_their_line(signed_in: AdminCLI) -> None:
    admin = signed_in
    repo(admin.cwd, manual=True, migration=False)
    assert apply(admin).returncode == 0
    repo(admin.cwd, manual=True, migration=True)  # manual is on already: migration is refused
    line = assert_one_line_error(apply(admin), 4, "")
    assert line == f"default.yml:3: controls.windows_migration_enabled: {MESSAGE_MIGRATION_WHILE_MANUAL}"

    repo(admin.cwd, manual=False, migration=True)
    apply(admin)  # one apply may turn one off and the other on
    assert admin.json("config", "show")["mdm"]["windows_migration_enabled"] is True
    write(admin.cwd, "on.yml", "controls:\n  enable_turn_on_windows_mdm_manually: true\n")
    line = assert_one_line_error(admin.run("gitops", "apply", "-f", "on.yml"), 4, "")
    assert line == f"on.yml:2: controls.enable_turn_on_windows_mdm_manually: {MESSAGE_MANUAL_WHILE_MIGRATION}"
    admin.ok("config", "set", "mdm.windows_migration_enabled", "false")
    admin.ok("config", "set", "mdm.enable_turn_on_windows_mdm_manually", "true")
    write(admin.cwd, "mig.yml", "controls:\n  windows_migration_enabled: true\n")
    line = assert_one_line_error(admin.run("gitops", "apply", "-f", "mig.yml"), 4, "")
    assert line == f"mig.yml:2: controls.windows_migration_enabled: {MESSAGE_MIGRATION_WHILE_MANUAL}"


def test_a_free_server(tmp_path: Path, license_key) -> None:
    server = admin_server(tmp_path / "free", license_key, premium=False)
    try:
        admin = AdminCLI(server, tmp_path / "home", tmp_path)
        admin.login()
        write(tmp_path, "on.yml", "controls:\n  enable_turn_on_windows_mdm_manually: true\n")
        line = assert_one_line_error(admin.run("gitops", "apply", "-f", "on.yml"), 4, "")
        key = "enable_turn_on_windows_mdm_manually"
        assert line == f"on.yml:2: controls.{key}: {MESSAGE_PREMIUM_REQUIRED.format(key=key)}"

        generated = admin.ok("gitops", "generate", "--dir", "out")
        assert "Premium controls" in generated.stderr
        default = (tmp_path / "out" / "default.yml").read_text()
        assert "windows_migration_enabled" not in default and key not in default
        assert "windows_enabled_and_configured: true" in default
        again = AdminCLI(server, admin.home, tmp_path / "out").ok("gitops", "apply", "-f", "default.yml")
        assert "Nothing to change" in again.stdout
    finally:
        server.stop()
