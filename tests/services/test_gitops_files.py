"""GitOps files -> spec and back: strict YAML, errors that name file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from winmdm.errors import InvalidInput
from winmdm.services.gitops_files import load_files, write_files
from winmdm.services.gitops_spec import parse_spec, spec_json
from winmdm.services.gitops_yaml import GitOpsFileError

PROFILE = (
    "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Camera/"
    'AllowCamera</LocURI></Target><Meta><Format xmlns="syncml:metinf">int</Format></Meta>'
    "<Data>0</Data></Item></Replace>"
)


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(tmp_path, "lib/camera.xml", PROFILE)
    write(
        tmp_path,
        "default.yml",
        """
        controls:
          windows_enabled_and_configured: true
          enable_turn_on_windows_mdm_manually: false
          enable_end_user_authentication: false
        profiles:
          - path: lib/camera.xml
        agent_package:
          url: https://downloads.example.com/agent.msi
          sha256: "aa00000000000000000000000000000000000000000000000000000000000000"
          product_code: "{11111111-2222-3333-4444-555555555555}"
          version: 1.10
          install_args: /qn
        """,
    )
    write(
        tmp_path,
        "teams/sales.yml",
        """
        name: Sales
        controls:
          enable_end_user_authentication: true
        profiles:
          - path: ../lib/camera.xml
            name: No camera
        """,
    )
    return tmp_path


def test_files_load_into_a_spec_with_profile_texts(repo: Path) -> None:
    loaded = load_files([repo / "default.yml", repo / "teams/sales.yml"])
    assert loaded.spec == {
        "controls": {
            "windows_enabled_and_configured": True,
            "enable_turn_on_windows_mdm_manually": False,
            "enable_end_user_authentication": False,
        },
        "profiles": [{"name": "camera", "syncml": PROFILE}],
        "agent_package": {
            "url": "https://downloads.example.com/agent.msi",
            "sha256": "aa" + "0" * 62,
            "product_code": "{11111111-2222-3333-4444-555555555555}",
            "version": "1.10",  # as written, not the float 1.1
            "install_args": "/qn",
        },
        "teams": [
            {
                "name": "Sales",
                "controls": {"enable_end_user_authentication": True},
                "profiles": [{"name": "No camera", "syncml": PROFILE}],
            }
        ],
    }
    assert loaded.default_file == str(repo / "default.yml")
    parsed = parse_spec(loaded.spec)  # what the server reads
    assert parsed.whole and parsed.teams[0].end_user_authentication is True


def test_the_source_map_points_server_errors_at_file_line_and_key(repo: Path) -> None:
    sources = load_files([repo / "default.yml", repo / "teams/sales.yml"]).sources
    team = repo / "teams/sales.yml"
    assert sources.explain("bad", "controls.enable_turn_on_windows_mdm_manually") == (
        f"{repo / 'default.yml'}:3: controls.enable_turn_on_windows_mdm_manually: bad"
    )
    assert sources.explain("bad", "teams[0].profiles[0].syncml") == (
        f"{team}:5: profiles[0].path (../lib/camera.xml): bad"
    )
    assert sources.explain("bad", "teams[0].profiles[0].name") == f"{team}:6: profiles[0].name: bad"
    assert sources.explain("bad", "teams[0].name") == f"{team}:1: name: bad"
    assert (
        sources.explain("bad", "agent_package.version")
        == f"{repo / 'default.yml'}:11: agent_package.version: bad"
    )
    # Not written anywhere: the spec path itself.
    assert sources.explain("bad", "teams[4]") == "teams[4]: bad"
    assert sources.explain("bad", None) == "bad"


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ("controls:\n  windows_enabled: true\n", 2, "controls.windows_enabled", "unknown key"),
        (
            "controls:\n  windows_enabled_and_configured: maybe\n",
            2,
            "controls.windows_enabled_and_configured",
            "must be true or false",
        ),
        ("profiles:\n  - name: x\n", 2, "profiles[0]", "has no path"),
        ("profiles:\n  - path: lib/missing.xml\n", 2, "profiles[0].path", "cannot read"),
        ("profiles: lib/camera.xml\n", 1, "profiles", "must be a list"),
        ("agent_package:\n  url: https://x.example/a.msi\n", 1, "agent_package", "has no sha256"),
        (
            "controls:\n  windows_enabled_and_configured: true\n  windows_enabled_and_configured: false\n",
            3,
            "controls.windows_enabled_and_configured",
            "given twice (also on line 2)",
        ),
        ("teams: []\n", 1, "teams", "unknown key"),
        ("controls: &c\n  windows_enabled_and_configured: true\n", 1, "", "anchors and aliases"),
        ("controls:\n  windows_enabled_and_configured: !!bool true\n", 2, "", "YAML tags"),
        ("controls:\n  - true\n", 1, "controls", "must be a mapping"),
        ("controls: {windows_enabled_and_configured: true\n", 2, "", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", 2, "", "not valid YAML"),
    ],
)
def test_default_file_errors_name_file_line_and_key(
    repo: Path, text: str, line: int, key: str, problem: str
) -> None:
    path = write(repo, "default.yml", text)
    with pytest.raises(GitOpsFileError) as caught:
        load_files([path])
    error = caught.value
    assert (error.location.file, error.location.line, error.location.key) == (str(path), line, key)
    assert problem in error.message
    assert error.message.startswith(f"{path}:{line}: {key}" if key else f"{path}:{line}: ")
    assert isinstance(error, InvalidInput)


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ("name: true\n", 1, "name", "must be text"),
        ("name: ''\n", 1, "name", "is empty"),
        (
            "name: Sales\ncontrols:\n  windows_migration_enabled: true\n",
            3,
            "controls.windows_migration_enabled",
            "unknown key",
        ),
        ("name: Sales\nagent_package: null\n", 2, "agent_package", "unknown key"),
        (
            "name: Sales\nprofiles:\n  - path: ../lib/camera.xml\n    nme: x\n",
            4,
            "profiles[0].nme",
            "unknown key",
        ),
    ],
)
def test_team_file_errors_name_file_line_and_key(
    repo: Path, text: str, line: int, key: str, problem: str
) -> None:
    path = write(repo, "teams/sales.yml", text)
    with pytest.raises(GitOpsFileError) as caught:
        load_files([repo / "default.yml", path])
    assert (caught.value.location.line, caught.value.location.key) == (line, key)
    assert problem in caught.value.message and str(path) in caught.value.message


def test_a_team_in_two_files_and_two_default_files_are_refused(repo: Path) -> None:
    other = write(repo, "teams/sales-again.yml", "name: Sales\n")
    with pytest.raises(GitOpsFileError, match=r"also defined in .*sales\.yml"):
        load_files([repo / "teams/sales.yml", other])
    second = write(repo, "more.yml", "controls: {}\n")
    with pytest.raises(GitOpsFileError, match="a second default file"):
        load_files([repo / "default.yml", second])
    with pytest.raises(GitOpsFileError, match="cannot read it"):
        load_files([repo / "nope.yml"])


def test_team_files_alone_make_a_partial_spec(repo: Path) -> None:
    loaded = load_files([repo / "teams/sales.yml"])
    assert set(loaded.spec) == {"teams"} and loaded.default_file is None
    assert not parse_spec(loaded.spec).whole


def test_an_empty_default_file_describes_an_empty_server(repo: Path) -> None:
    path = write(repo, "default.yml", "# nothing yet\n")
    spec = parse_spec(load_files([path]).spec)
    assert spec.whole and spec.profiles == () and spec.teams == () and spec.controls == {}
    assert not spec.manages_agent_package


def stripped(spec: dict) -> dict:
    data = spec_json(parse_spec(spec))
    for profiles in [data["profiles"], *(t["profiles"] for t in data["teams"])]:
        for profile in profiles:
            profile["syncml"] = profile["syncml"].strip()
    data["teams"].sort(key=lambda team: team["name"])
    return data


def test_write_then_load_gives_the_same_spec(repo: Path, tmp_path: Path) -> None:
    spec = load_files([repo / "default.yml", repo / "teams/sales.yml"]).spec
    spec["teams"].append(
        {"name": "Sales/EU", "controls": {"enable_end_user_authentication": False}, "profiles": []}
    )
    spec["teams"].append(
        {
            "name": "sales eu",
            "controls": {"enable_end_user_authentication": False},
            "profiles": [{"name": "camera", "syncml": PROFILE + "<!-- other -->"}],
        }
    )
    out = tmp_path / "out"
    written = write_files(spec, out, premium=True)
    names = sorted(str(p.relative_to(out)) for p in written)
    assert names == [
        "default.yml",
        "lib/camera-2.xml",
        "lib/camera.xml",
        "teams/sales-eu-2.yml",
        "teams/sales-eu.yml",
        "teams/sales.yml",
    ]
    files = [out / "default.yml", *sorted((out / "teams").glob("*.yml"))]
    again = load_files(files).spec
    assert stripped(again) == stripped(spec), "the server compares profile texts stripped"
    by_name = {t["name"]: t for t in again["teams"]}
    assert by_name.keys() == {"Sales", "Sales/EU", "sales eu"}
    assert by_name["Sales"]["profiles"] == [{"name": "No camera", "syncml": PROFILE + "\n"}]
    assert by_name["sales eu"]["profiles"][0]["syncml"].startswith(PROFILE + "<!--")
    assert again["controls"] == spec["controls"] and again["agent_package"] == spec["agent_package"]


def test_write_leaves_premium_controls_out_on_free(tmp_path: Path) -> None:
    spec = {
        "controls": {
            "windows_enabled_and_configured": True,
            "windows_migration_enabled": False,
            "enable_turn_on_windows_mdm_manually": False,
            "enable_end_user_authentication": True,
        },
        "profiles": [],
        "agent_package": None,
        "teams": [],
    }
    write_files(spec, tmp_path, premium=False)
    loaded = load_files([tmp_path / "default.yml"]).spec
    assert loaded["controls"] == {
        "windows_enabled_and_configured": True,
        "enable_end_user_authentication": True,
    }
    assert loaded["agent_package"] is None


def test_policies_load_inline_and_their_errors_name_file_line_and_key(repo: Path) -> None:
    path = write(
        repo,
        "teams/laptops.yml",
        """
        name: Laptops
        policies:
          - name: Disk encrypted
            query: SELECT 1 FROM bitlocker_info WHERE protection_status = 1;
          - name: Firewall on
        """,
    )
    with pytest.raises(GitOpsFileError) as caught:
        load_files([path])
    assert caught.value.location.line == 5 and "has no query:" in caught.value.message
    path.write_text(path.read_text() + "    query: SELECT 1;\n")
    loaded = load_files([repo / "default.yml", path])
    assert "policies" not in loaded.spec  # default.yml has no policies: key: left alone
    assert loaded.spec["teams"][0]["policies"][1] == {"name": "Firewall on", "query": "SELECT 1;"}
    with pytest.raises(InvalidInput) as refused:
        parse_spec({"teams": [{"name": "Laptops", "policies": [{"name": "x", "query": 5}]}]})
    assert refused.value.field == "teams[0].policies[0].query"
    assert str(loaded.sources.locate("teams[0].policies[1].query")).startswith(f"{path}:6")
