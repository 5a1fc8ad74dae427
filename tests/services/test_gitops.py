"""GitOpsService over SQLite and PostgreSQL: plans, apply twice = no change, export -> apply round
trip, the settings rules with the settings service's own texts, errors named by spec path."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from winmdm.domain.admin import Admin, AdminTokenKind, Principal, Role
from winmdm.errors import InvalidInput, PremiumRequired
from winmdm.services.agent import AgentService
from winmdm.services.gitops import GitOpsService, Plan
from winmdm.services.gitops_files import load_files, write_files
from winmdm.services.license import FREE, License, Tier
from winmdm.services.policies import PolicyService
from winmdm.services.profiles import ProfileService
from winmdm.services.settings import (
    MESSAGE_MANUAL_WHILE_MIGRATION,
    MESSAGE_MIGRATION_WHILE_MANUAL,
    MESSAGE_PREMIUM_REQUIRED,
    SettingsService,
)
from winmdm.services.teams import TeamService

CAMERA = (
    "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Camera/"
    'AllowCamera</LocURI></Target><Meta><Format xmlns="syncml:metinf">int</Format></Meta>'
    "<Data>0</Data></Item></Replace>"
)
COOKIES = CAMERA.replace("Camera/AllowCamera", "Browser/AllowCookies")
PACKAGE = {
    "url": "https://downloads.example.com/agent.msi",
    "sha256": "AB" * 32,
    "product_code": "{6f7cb29f-1319-4816-b345-0856916eb801}",
    "version": "1.2.3",
    "install_args": "/qn",
}
PREMIUM = License(Tier.PREMIUM, organization="Corp Example")


@dataclass
class Server:
    gitops: GitOpsService
    settings: SettingsService
    teams: TeamService
    profiles: ProfileService
    agent: AgentService
    storage: object
    admin: Principal
    policies: PolicyService | None = None

    def apply(self, spec: dict, *, dry_run: bool = False) -> Plan:
        return self.gitops.apply(copy.deepcopy(spec), dry_run=dry_run, actor=self.admin)

    def activities(self) -> int:
        with self.storage.transaction() as tx:
            return len(tx.activities.list(limit=10_000))

    def summary(self, plan: Plan) -> list[tuple[str, str, str]]:
        return [(c.action, c.kind, c.name) for c in plan.plan]


def clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def make_server(storage):
    def make(license: License = PREMIUM) -> Server:
        profiles = ProfileService(storage, clock)
        teams = TeamService(storage, clock, profiles=profiles)
        agent = AgentService(storage, clock, b"k" * 32, "https://mdm.example.com")
        settings = SettingsService(storage, clock, license, sign_in_configured=True)
        policies = PolicyService(storage, clock)
        gitops = GitOpsService(
            settings=settings, teams=teams, profiles=profiles, agent=agent, policies=policies
        )
        admin = Admin(id=1, email="admin@example.com", role=Role.ADMIN, created_at=clock())
        return Server(
            gitops,
            settings,
            teams,
            profiles,
            agent,
            storage,
            Principal(admin, 1, AdminTokenKind.SESSION),
            policies,
        )

    return make


@pytest.fixture
def server(make_server) -> Server:
    return make_server()


def full_spec() -> dict:
    return {
        "controls": {
            "windows_enabled_and_configured": True,
            "windows_migration_enabled": False,
            "enable_turn_on_windows_mdm_manually": True,
            "enable_end_user_authentication": True,
        },
        "profiles": [{"name": "Camera", "syncml": CAMERA}],
        "agent_package": dict(PACKAGE),
        "teams": [
            {
                "name": "Sales",
                "controls": {"enable_end_user_authentication": True},
                "profiles": [{"name": "Camera", "syncml": CAMERA}, {"name": "Cookies", "syncml": COOKIES}],
            },
            {"name": "Kiosks", "profiles": []},
        ],
    }


def test_a_first_apply_creates_everything_and_a_second_changes_nothing(server: Server) -> None:
    dry = server.apply(full_spec(), dry_run=True)
    assert not dry.applied and server.activities() == 0, "a dry run changes nothing"
    assert server.teams.list() == [] and server.agent.package() is None
    plan = server.apply(full_spec())
    assert plan.applied and plan.plan == dry.plan
    assert server.summary(plan) == [
        ("update", "setting", "controls.enable_turn_on_windows_mdm_manually"),
        ("update", "setting", "controls.enable_end_user_authentication"),
        ("create", "agent_package", "{6f7cb29f-1319-4816-b345-0856916eb801} 1.2.3"),
        ("create", "profile", "Camera"),
        ("create", "team", "Sales"),
        ("create", "profile", "Camera"),
        ("create", "profile", "Cookies"),
        ("create", "team", "Kiosks"),
    ]
    settings = server.settings.get()
    assert settings.enable_turn_on_windows_mdm_manually and settings.end_user_authentication
    teams = {t.name: t for t in server.teams.list()}
    assert teams["Sales"].end_user_auth and not teams["Kiosks"].end_user_auth
    assert [p.name for p in server.profiles.list_profiles(teams["Sales"].id)] == ["Camera", "Cookies"]
    assert server.agent.package().product_code == PACKAGE["product_code"].upper()

    before = server.activities()
    again = server.apply(full_spec())
    assert again.plan == () and not again.applied
    assert server.activities() == before, "nothing changed, so no activity"


def test_files_dropped_are_removed_and_changed_profiles_replaced(server: Server) -> None:
    server.apply(full_spec())
    spec = full_spec()
    spec["profiles"] = []
    spec["teams"] = [spec["teams"][0]]
    spec["teams"][0]["profiles"] = [{"name": "Camera", "syncml": CAMERA.replace("<Data>0", "<Data>1")}]
    spec["teams"][0]["controls"] = {"enable_end_user_authentication": False}
    plan = server.apply(spec)
    assert [(c.action, c.kind, c.name, c.detail) for c in plan.plan] == [
        ("delete", "profile", "Camera", "No team"),
        ("update", "team", "Sales", "end-user authentication on -> off"),
        ("delete", "profile", "Cookies", "team Sales"),
        ("update", "profile", "Camera", "team Sales: content changed; hosts get the new profile"),
        (
            "delete",
            "team",
            "Kiosks",
            "its hosts move to No team; its enrollment secrets stop working",
        ),
    ]
    assert [t.name for t in server.teams.list()] == ["Sales"]
    (camera,) = server.profiles.list_profiles(server.teams.list()[0].id)
    assert "<Data>1</Data>" in camera.syncml
    assert server.profiles.list_profiles(None) == []
    assert server.apply(spec).plan == ()


def test_team_files_alone_touch_only_their_teams(server: Server) -> None:
    server.apply(full_spec())
    plan = server.apply({"teams": [{"name": "New", "profiles": [{"name": "Cookies", "syncml": COOKIES}]}]})
    assert server.summary(plan) == [("create", "team", "New"), ("create", "profile", "Cookies")]
    assert {t.name for t in server.teams.list()} == {"Sales", "Kiosks", "New"}, "no team deleted"
    assert [p.name for p in server.profiles.list_profiles(None)] == ["Camera"], "No team untouched"


def test_export_then_apply_is_an_empty_plan_also_through_files(server: Server, tmp_path: Path) -> None:
    server.apply(full_spec())
    exported = server.gitops.export()
    assert exported["controls"] == full_spec()["controls"]
    assert [t["name"] for t in exported["teams"]] == ["Kiosks", "Sales"]
    assert exported["agent_package"]["sha256"] == "ab" * 32
    assert server.apply(exported).plan == ()

    write_files(exported, tmp_path, premium=True)
    files = [tmp_path / "default.yml", *sorted((tmp_path / "teams").glob("*.yml"))]
    assert server.apply(load_files(files).spec).plan == ()


def test_an_empty_server_exports_and_round_trips(server: Server, tmp_path: Path) -> None:
    exported = server.gitops.export()
    assert exported == {
        "controls": {
            "windows_enabled_and_configured": True,
            "windows_migration_enabled": False,
            "enable_turn_on_windows_mdm_manually": False,
            "enable_end_user_authentication": False,
        },
        "profiles": [],
        "agent_package": None,
        "policies": [],
        "teams": [],
    }
    write_files(exported, tmp_path, premium=False)
    assert server.apply(load_files([tmp_path / "default.yml"]).spec).plan == ()


# --- the seed's "GitOps and API" checklist: the settings service's texts, word for word ---------


def test_premium_can_turn_on_manual_enrollment(server: Server) -> None:
    plan = server.apply({"controls": {"enable_turn_on_windows_mdm_manually": True}})
    assert [(c.name, c.detail) for c in plan.plan] == [
        ("controls.enable_turn_on_windows_mdm_manually", "false -> true")
    ]
    assert server.settings.get().enable_turn_on_windows_mdm_manually


def test_manual_while_migration_is_refused_with_the_settings_text(server: Server) -> None:
    server.apply({"controls": {"windows_migration_enabled": True}})
    before = server.activities()
    with pytest.raises(InvalidInput) as caught:
        server.apply({"controls": {"enable_turn_on_windows_mdm_manually": True}})
    assert caught.value.message == MESSAGE_MANUAL_WHILE_MIGRATION
    assert caught.value.field == "controls.enable_turn_on_windows_mdm_manually"
    assert server.activities() == before
    # Both in one spec, migration off and manual on: allowed, the rule sees the whole change.
    server.apply(
        {"controls": {"windows_migration_enabled": False, "enable_turn_on_windows_mdm_manually": True}}
    )
    assert server.settings.get().enable_turn_on_windows_mdm_manually


def test_migration_while_manual_is_refused_with_the_settings_text(server: Server) -> None:
    server.apply({"controls": {"enable_turn_on_windows_mdm_manually": True}})
    with pytest.raises(InvalidInput) as caught:
        server.apply({"controls": {"windows_migration_enabled": True}})
    assert caught.value.message == MESSAGE_MIGRATION_WHILE_MANUAL
    assert caught.value.field == "controls.windows_migration_enabled"


def test_free_refuses_manual_with_the_license_text(make_server) -> None:
    server = make_server(FREE)
    with pytest.raises(PremiumRequired) as caught:
        server.apply({"controls": {"enable_turn_on_windows_mdm_manually": True}})
    key = "enable_turn_on_windows_mdm_manually"
    assert caught.value.message == MESSAGE_PREMIUM_REQUIRED.format(key=key)
    assert "Premium" in caught.value.message and "WINMDM_LICENSE_KEY" in caught.value.message
    assert caught.value.field == f"controls.{key}"
    assert not server.settings.get().enable_turn_on_windows_mdm_manually
    # A dry run foresees the refusal, in the same words.
    with pytest.raises(PremiumRequired) as foreseen:
        server.apply({"controls": {key: True}}, dry_run=True)
    assert foreseen.value.message == caught.value.message
    # Off is no change, so a Free server takes a file that says so.
    assert server.apply({"controls": {key: False}}).plan == ()
    # The settings go first: the refusal comes before any other change of the spec.
    with pytest.raises(PremiumRequired):
        server.apply(full_spec())
    assert server.teams.list() == [] and server.agent.package() is None and server.activities() == 0


# --- errors by spec path, before anything changes ------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (
            lambda s: s["teams"][0]["profiles"].append({"name": "Bad", "syncml": "<Get/>"}),
            "teams[0].profiles[2].syncml",
            "",
        ),
        (lambda s: s["teams"][1].update(name="No team"), "teams[1].name", "reserved"),
        (lambda s: s["teams"][1].update(name="Sales"), "teams[1].name", "two teams are named"),
        (lambda s: s["profiles"][0].update(name="x" * 300), "profiles[0].name", "the limit is 255"),
        (
            lambda s: s["controls"].update(windows_enabled_and_configured="yes"),
            "controls.windows_enabled_and_configured",
            "true or false",
        ),
        (lambda s: s["teams"][0].update(owner="me"), "teams[0].owner", "unknown key"),
        (lambda s: s["agent_package"].pop("version"), "agent_package.version", "has no version"),
    ],
)
def test_a_wrong_spec_names_the_spec_path_and_changes_nothing(server: Server, mutate, field, problem) -> None:
    spec = full_spec()
    mutate(spec)
    with pytest.raises(InvalidInput) as caught:
        server.apply(spec)
    assert caught.value.field == field
    assert problem in caught.value.message
    assert server.activities() == 0 and server.teams.list() == []


def test_agent_package_errors_name_the_spec_path(server: Server) -> None:
    spec = {"agent_package": {**PACKAGE, "url": "http://insecure.example.com/a.msi"}}
    with pytest.raises(InvalidInput) as caught:
        server.apply(spec)
    assert caught.value.field == "agent_package.url" and "https://" in caught.value.message


def test_an_agent_package_cannot_be_removed_by_null(server: Server) -> None:
    server.apply({"agent_package": PACKAGE})
    with pytest.raises(InvalidInput) as caught:
        server.apply({"agent_package": None})
    assert caught.value.field == "agent_package" and "cannot remove it" in caught.value.message
    assert server.apply({"controls": {}}).plan == (), "left out: the package stays"


def test_an_uploaded_msi_round_trips_and_can_change_its_arguments(server: Server) -> None:
    msi = bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 100
    server.agent.set_package(PACKAGE["product_code"], "2.0", "", content=msi, actor=None)
    exported = server.gitops.export()["agent_package"]
    assert exported["url"] is None
    assert server.apply({"agent_package": exported}).plan == ()
    plan = server.apply({"agent_package": {**exported, "install_args": "/quiet"}})
    assert server.summary(plan) == [("update", "agent_package", f"{PACKAGE['product_code'].upper()} 2.0")]
    assert server.agent.package().content == msi and server.agent.package().install_args == "/quiet"
    with pytest.raises(InvalidInput, match="no uploaded MSI"):
        server.apply({"agent_package": {**exported, "sha256": "cd" * 32}})


def test_every_change_names_its_actor(server: Server) -> None:
    server.gitops.apply(full_spec(), dry_run=False, actor="ops@example.com")
    with server.storage.transaction() as tx:
        activities = tx.activities.list(limit=100)
    assert activities and {a.actor for a in activities} == {"ops@example.com"}
    assert {"enabled_windows_mdm_manual_enrollment", "created_team", "created_windows_profile"} <= {
        a.type for a in activities
    }


# --- policies (docs/policies.md) -------------------------------------------------------------------

FIREWALL = "SELECT 1 FROM windows_firewall_profiles WHERE enabled = 1;"
DISK = "SELECT 1 FROM bitlocker_info WHERE protection_status = 1;"


def _policies(server: Server) -> set[tuple[int | None, str, str]]:
    return {(p.team_id, p.name, p.sql) for p in server.policies.all_policies()}


def test_policies_are_applied_per_scope_and_left_alone_without_their_key(
    server: Server, tmp_path: Path
) -> None:
    spec = {
        "policies": [{"name": "Firewall on", "query": FIREWALL}],
        "teams": [{"name": "Laptops", "policies": [{"name": "Disk encrypted", "query": DISK}]}],
    }
    plan = server.apply(spec)
    assert server.summary(plan) == [
        ("create", "policy", "Firewall on"),
        ("create", "team", "Laptops"),
        ("create", "policy", "Disk encrypted"),
    ]
    laptops = next(t.id for t in server.teams.list() if t.name == "Laptops")
    assert _policies(server) == {(None, "Firewall on", FIREWALL), (laptops, "Disk encrypted", DISK)}
    assert server.apply(spec).plan == ()

    exported = server.gitops.export()
    assert exported["policies"] == [{"name": "Firewall on", "query": FIREWALL}]
    assert exported["teams"][0]["policies"] == [{"name": "Disk encrypted", "query": DISK}]
    write_files(exported, tmp_path, premium=True)
    files = [tmp_path / "default.yml", *sorted((tmp_path / "teams").glob("*.yml"))]
    assert server.apply(load_files(files).spec).plan == ()

    # A changed query replaces the policy; a policy left out of its list goes.
    spec["teams"][0]["policies"] = [{"name": "Disk encrypted", "query": DISK.replace("1;", "2;")}]
    spec["policies"] = []
    plan = server.apply(spec, dry_run=True)
    assert server.summary(plan) == [
        ("delete", "policy", "Firewall on"),
        ("update", "policy", "Disk encrypted"),
    ]
    assert not plan.applied and len(_policies(server)) == 2
    server.apply(spec)
    assert _policies(server) == {(laptops, "Disk encrypted", DISK.replace("1;", "2;"))}
    # Without the key, a scope's policies stay as they are.
    assert server.apply({"teams": [{"name": "Laptops"}]}).plan == ()
    assert len(_policies(server)) == 1


@pytest.mark.parametrize(
    ("policies", "field", "problem"),
    [
        ([{"name": "Firewall on"}], "teams[0].policies[0].query", "has no query"),
        ([{"name": "x", "query": FIREWALL, "interval": 5}], "teams[0].policies[0].interval", "unknown key"),
        (
            [{"name": "A", "query": FIREWALL}, {"name": "A", "query": DISK}],
            "teams[0].policies[1].name",
            "two",
        ),
        ([{"name": "two\nlines", "query": FIREWALL}], "teams[0].policies[0].name", "one line"),
        ([{"name": "ok", "query": "a\x00"}], "teams[0].policies[0].query", "osquery SQL"),
        ("Firewall on", "teams[0].policies", "must be a list"),
    ],
)
def test_policy_errors_name_their_spec_path_and_change_nothing(
    server: Server, policies: object, field: str, problem: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        server.apply({"teams": [{"name": "Laptops", "policies": policies}]})
    assert raised.value.field == field and problem in raised.value.message
    assert server.teams.list() == [] and _policies(server) == set()
