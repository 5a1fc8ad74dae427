"""The GitOps spec (docs/gitops.md, docs/api.md "GitOps"): the JSON the CLI builds from YAML files
and `POST /api/v1/spec` takes, read into typed values. Every error is an InvalidInput whose
`field` is the spec path (`teams[1].profiles[0].name`), which the CLI maps back to file and line.

A spec that has any of `controls`, `profiles` or `agent_package` describes the whole server (the
default file was given): No team's profiles it does not list are removed and teams it does not
list are deleted. A spec with only `teams` changes those teams and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from winmdm.errors import InvalidInput

# GitOps control -> the key under `mdm` in the config (docs/api.md "Config").
CONTROLS: dict[str, str] = {
    "windows_enabled_and_configured": "windows_enabled_and_configured",
    "windows_migration_enabled": "windows_migration_enabled",
    "enable_turn_on_windows_mdm_manually": "enable_turn_on_windows_mdm_manually",
    "enable_end_user_authentication": "end_user_authentication",
}
PREMIUM_CONTROLS = ("windows_migration_enabled", "enable_turn_on_windows_mdm_manually")
TEAM_CONTROLS = ("enable_end_user_authentication",)
AGENT_REQUIRED = ("url", "sha256", "product_code", "version")
AGENT_OPTIONAL = ("install_args",)
TOP_KEYS = ("controls", "profiles", "agent_package", "policies", "teams")
PROFILE_KEYS = ("name", "syncml")
POLICY_KEYS = ("name", "query")
TEAM_KEYS = ("name", "controls", "profiles", "policies")
MAX_PROFILES = 1000
MAX_POLICIES = 1000
MAX_TEAMS = 1000


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    syncml: str


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    query: str


@dataclass(frozen=True, slots=True)
class AgentPackageSpec:
    """An agent package at a URL. `url` None means the uploaded MSI with this SHA-256 (export
    writes it so; GitOps cannot upload, so apply only accepts it when the server has that MSI)."""

    url: str | None
    sha256: str
    product_code: str
    version: str
    install_args: str = ""


@dataclass(frozen=True, slots=True)
class TeamSpec:
    name: str
    end_user_authentication: bool | None  # None: left as it is (new teams: off)
    profiles: tuple[ProfileSpec, ...]
    # None: the key is absent and the team's policies stay as they are (docs/policies.md).
    policies: tuple[PolicySpec, ...] | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    controls: dict[str, bool]  # only the controls given; the others stay as they are
    profiles: tuple[ProfileSpec, ...]  # No team's
    agent_package: AgentPackageSpec | None
    manages_agent_package: bool  # False when the key is absent: the package stays as it is
    teams: tuple[TeamSpec, ...]
    whole: bool  # describes the whole server (see the module docstring)
    # The global policies; None: the key is absent and they stay as they are.
    policies: tuple[PolicySpec, ...] | None = None


def parse_spec(data: Any) -> Spec:
    """Read a spec; InvalidInput with the spec path of the first problem."""
    top = _object(data, "spec", TOP_KEYS, path="")
    whole = any(key in top for key in ("controls", "profiles", "agent_package"))
    controls = _controls(top.get("controls"), "controls", tuple(CONTROLS))
    profiles = _profiles(top.get("profiles"), "profiles")
    manages_agent = "agent_package" in top
    agent = _agent(top.get("agent_package"), "agent_package")
    teams = _teams(top.get("teams"), "teams")
    policies = _policies(top.get("policies"), "policies") if "policies" in top else None
    return Spec(controls, profiles, agent, manages_agent, teams, whole, policies)


def spec_json(spec: Spec) -> dict[str, Any]:
    """The spec as JSON (what `GET /api/v1/spec` answers): every key, so it describes the whole."""
    return {
        "controls": dict(spec.controls),
        "profiles": [_profile_json(p) for p in spec.profiles],
        "agent_package": None if spec.agent_package is None else _agent_json(spec.agent_package),
        "policies": [_policy_json(p) for p in spec.policies or ()],
        "teams": [
            {
                "name": team.name,
                "controls": {"enable_end_user_authentication": bool(team.end_user_authentication)},
                "profiles": [_profile_json(p) for p in team.profiles],
                "policies": [_policy_json(p) for p in team.policies or ()],
            }
            for team in spec.teams
        ],
    }


def _policy_json(policy: PolicySpec) -> dict[str, str]:
    return {"name": policy.name, "query": policy.query}


def _profile_json(profile: ProfileSpec) -> dict[str, str]:
    return {"name": profile.name, "syncml": profile.syncml}


def _agent_json(agent: AgentPackageSpec) -> dict[str, Any]:
    return {
        "url": agent.url,
        "sha256": agent.sha256,
        "product_code": agent.product_code,
        "version": agent.version,
        "install_args": agent.install_args,
    }


# --- readers --------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value: Any, what: str, allowed: tuple[str, ...], *, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object, not {_kind(value)}", field=path or None)
    for key in value:
        if key not in allowed:
            raise InvalidInput(
                f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}", field=_join(path, str(key))
            )
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{path} must be true or false, not {_kind(value)}", field=path)
    return value


def _text(value: Any, path: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{path} must be text, not {_kind(value)}", field=path)
    if required and not value.strip():
        raise InvalidInput(f"{path} is empty", field=path)
    return value


def _list(value: Any, path: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{path} must be a list, not {_kind(value)}", field=path)
    if len(value) > limit:
        raise InvalidInput(f"{path} has {len(value)} entries; the limit is {limit}", field=path)
    return value


def _controls(value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, bool]:
    if value is None:
        return {}
    given = _object(value, path, allowed, path=path)
    return {key: _bool(given[key], _join(path, key)) for key in allowed if key in given}


def _profiles(value: Any, path: str) -> tuple[ProfileSpec, ...]:
    profiles: list[ProfileSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(_list(value, path, MAX_PROFILES)):
        where = f"{path}[{index}]"
        entry = _object(item, where, PROFILE_KEYS, path=where)
        for key in PROFILE_KEYS:
            if key not in entry:
                raise InvalidInput(f"{where} has no {key}", field=_join(where, key))
        name = _text(entry["name"], _join(where, "name")).strip()
        if name in seen:
            raise InvalidInput(
                f"two profiles are named {name!r} ({path}[{seen[name]}] and {where}); "
                "profile names are unique per team",
                field=_join(where, "name"),
            )
        seen[name] = index
        profiles.append(ProfileSpec(name, _text(entry["syncml"], _join(where, "syncml"))))
    return tuple(profiles)


def _agent(value: Any, path: str) -> AgentPackageSpec | None:
    if value is None:
        return None
    entry = _object(value, path, AGENT_REQUIRED + AGENT_OPTIONAL, path=path)
    for key in AGENT_REQUIRED:
        if key not in entry:
            raise InvalidInput(f"{path} has no {key}", field=_join(path, key))
    url = entry["url"]
    return AgentPackageSpec(
        url=None if url is None else _text(url, _join(path, "url")),
        sha256=_text(entry["sha256"], _join(path, "sha256")).strip(),
        product_code=_text(entry["product_code"], _join(path, "product_code")).strip(),
        version=_text(entry["version"], _join(path, "version")).strip(),
        install_args=_text(entry.get("install_args", ""), _join(path, "install_args"), required=False),
    )


def _teams(value: Any, path: str) -> tuple[TeamSpec, ...]:
    teams: list[TeamSpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(_list(value, path, MAX_TEAMS)):
        where = f"{path}[{index}]"
        entry = _object(item, where, TEAM_KEYS, path=where)
        if "name" not in entry:
            raise InvalidInput(f"{where} has no name", field=_join(where, "name"))
        name = _text(entry["name"], _join(where, "name")).strip()
        if name in seen:
            raise InvalidInput(
                f"two teams are named {name!r} ({path}[{seen[name]}] and {where}); team names are unique",
                field=_join(where, "name"),
            )
        seen[name] = index
        controls = _controls(entry.get("controls"), _join(where, "controls"), TEAM_CONTROLS)
        teams.append(
            TeamSpec(
                name,
                controls.get("enable_end_user_authentication"),
                _profiles(entry.get("profiles"), _join(where, "profiles")),
                _policies(entry.get("policies"), _join(where, "policies")) if "policies" in entry else None,
            )
        )
    return tuple(teams)


def _policies(value: Any, path: str) -> tuple[PolicySpec, ...]:
    policies: list[PolicySpec] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(_list(value, path, MAX_POLICIES)):
        where = f"{path}[{index}]"
        entry = _object(item, where, POLICY_KEYS, path=where)
        for key in POLICY_KEYS:
            if key not in entry:
                raise InvalidInput(f"{where} has no {key}", field=_join(where, key))
        name = _text(entry["name"], _join(where, "name")).strip()
        if name in seen:
            raise InvalidInput(
                f"two policies are named {name!r} ({path}[{seen[name]}] and {where}); "
                "policy names are unique per team",
                field=_join(where, "name"),
            )
        seen[name] = index
        policies.append(PolicySpec(name, _text(entry["query"], _join(where, "query")).strip()))
    return tuple(policies)
