"""GitOps files <-> spec (docs/gitops.md).

`load_files` reads default.yml and teams/*.yml into the JSON spec `POST /api/v1/spec` takes
(profiles carry their SyncML text) and a source map from spec paths to file:line, so an error the
server names by spec path (`teams[1].profiles[0].syncml`) is shown where the admin wrote it.
`write_files` is the other way: the server's spec as default.yml, teams/<slug>.yml and lib/*.xml.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from winmdm.errors import InvalidInput
from winmdm.services.gitops_spec import (
    AGENT_OPTIONAL,
    AGENT_REQUIRED,
    CONTROLS,
    PREMIUM_CONTROLS,
    TEAM_CONTROLS,
)
from winmdm.services.gitops_yaml import GitOpsFileError, Location, Node, parse, read_bounded, read_text

DEFAULT_KEYS = ("controls", "profiles", "agent_package", "policies")
TEAM_KEYS = ("name", "controls", "profiles", "policies")
PROFILE_KEYS = ("path", "name")
POLICY_KEYS = ("name", "query")
_LAST_STEP = re.compile(r"(\.[^.\[\]]+|\[\d+\]|^[^.\[\]]+)$")
HEADER = "# winmdm GitOps ({kind}). Apply with: winmdm gitops apply -f default.yml -f teams/*.yml\n"


@dataclass
class SourceMap:
    """Spec path -> where it is written. A path not recorded falls back to its nearest parent."""

    at: dict[str, Location] = field(default_factory=dict)

    def locate(self, spec_path: str | None) -> Location | None:
        path = spec_path or ""
        while True:
            if path in self.at:
                return self.at[path]
            if not path:
                return None
            path = _LAST_STEP.sub("", path)

    def explain(self, message: str, spec_path: str | None) -> str:
        """The server's message prefixed with file:line: key (or the spec path when unknown)."""
        location = self.locate(spec_path)
        if location is not None:
            return f"{location}: {message}"
        return f"{spec_path}: {message}" if spec_path else message


@dataclass
class LoadedSpec:
    spec: dict[str, Any]
    sources: SourceMap
    default_file: str | None  # the file without `name:`, when one was given


def load_files(paths: Sequence[Path]) -> LoadedSpec:
    """Read the files: the one without `name:` is the default file, the others are teams."""
    if not paths:
        raise InvalidInput("give at least one file (-f default.yml)")
    sources = SourceMap()
    spec: dict[str, Any] = {}
    teams: list[dict[str, Any]] = []
    team_files: dict[str, str] = {}
    default_file: str | None = None
    for path in paths:
        shown = str(path)
        try:
            data = read_bounded(path)
        except OSError as exc:
            raise GitOpsFileError(Location(shown, 0), f"cannot read it: {exc.strerror or exc}") from None
        root = parse(shown, read_text(shown, data))
        is_team = not root.is_null and _has_key(root, "name")
        if not is_team:
            if default_file is not None:
                raise root.fail(
                    f"a second default file (no name: key) after {default_file}; give one default file "
                    "and team files with name:"
                )
            default_file = shown
            _load_default(root, path, spec, sources)
            continue
        team = _load_team(root, path, f"teams[{len(teams)}]", sources)
        if team["name"] in team_files:
            where = sources.at[f"teams[{len(teams)}].name"]
            raise GitOpsFileError(
                where, f"team {team['name']!r} is also defined in {team_files[team['name']]}"
            )
        team_files[team["name"]] = shown
        teams.append(team)
    spec["teams"] = teams
    return LoadedSpec(spec, sources, default_file)


def _has_key(root: Node, key: str) -> bool:
    return isinstance(root.node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == key for k, _ in root.node.value
    )


def _record(sources: SourceMap, spec_path: str, node: Node, key: str | None = None) -> None:
    sources.at[spec_path] = node.at(key)


def _load_default(root: Node, path: Path, spec: dict[str, Any], sources: SourceMap) -> None:
    entries = root.mapping(DEFAULT_KEYS)
    spec["controls"] = _controls(entries.get("controls"), "controls", tuple(CONTROLS), sources)
    spec["profiles"] = _profile_list(entries.get("profiles"), path, "profiles", sources)
    if "agent_package" in entries:
        spec["agent_package"] = _agent(entries["agent_package"], sources)
    if "policies" in entries:
        spec["policies"] = _policy_list(entries["policies"], "policies", sources)


def _load_team(root: Node, path: Path, spec_path: str, sources: SourceMap) -> dict[str, Any]:
    entries = root.mapping(TEAM_KEYS)
    _record(sources, spec_path, root, "name")
    name = entries["name"]
    _record(sources, f"{spec_path}.name", name)
    team: dict[str, Any] = {"name": name.text().strip()}
    if "controls" in entries:
        team["controls"] = _controls(entries["controls"], f"{spec_path}.controls", TEAM_CONTROLS, sources)
    team["profiles"] = _profile_list(entries.get("profiles"), path, f"{spec_path}.profiles", sources)
    if "policies" in entries:
        team["policies"] = _policy_list(entries["policies"], f"{spec_path}.policies", sources)
    return team


def _controls(
    node: Node | None, spec_path: str, allowed: tuple[str, ...], sources: SourceMap
) -> dict[str, bool]:
    if node is None:
        return {}
    _record(sources, spec_path, node)
    values = {}
    for key, child in node.mapping(allowed).items():
        _record(sources, f"{spec_path}.{key}", child)
        values[key] = child.boolean()
    return values


def _profile_list(node: Node | None, yml: Path, spec_path: str, sources: SourceMap) -> list[dict[str, str]]:
    if node is None:
        return []
    _record(sources, spec_path, node)
    profiles = []
    for index, item in enumerate(node.items()):
        where = f"{spec_path}[{index}]"
        entries = item.mapping(PROFILE_KEYS, null_ok=False)
        if "path" not in entries:
            raise item.fail("has no path: (the profile's XML file, relative to this file)")
        path_node = entries["path"]
        relative = path_node.text().strip()
        _record(sources, where, path_node)
        _record(sources, f"{where}.syncml", path_node, f"{path_node.key} ({relative})")
        target = yml.parent / relative
        try:
            data = read_bounded(target)
        except OSError as exc:
            raise path_node.fail(f"cannot read {target}: {exc.strerror or exc}") from None
        syncml = read_text(str(target), data)
        if "name" in entries:
            name = entries["name"].text().strip()
            _record(sources, f"{where}.name", entries["name"])
        else:
            name = Path(relative).stem
            _record(sources, f"{where}.name", path_node, f"{path_node.key} (the name is the file name)")
        profiles.append({"name": name, "syncml": syncml})
    return profiles


def _policy_list(node: Node, spec_path: str, sources: SourceMap) -> list[dict[str, str]]:
    """A scope's policies, each `name:` and `query:` inline (null or empty: none)."""
    _record(sources, spec_path, node)
    if node.is_null:
        return []
    policies = []
    for index, item in enumerate(node.items()):
        where = f"{spec_path}[{index}]"
        entries = item.mapping(POLICY_KEYS, null_ok=False)
        _record(sources, where, item)
        for key in POLICY_KEYS:
            if key not in entries:
                raise item.fail(f"has no {key}: (a policy needs name: and query:)")
            _record(sources, f"{where}.{key}", entries[key])
        policies.append({key: entries[key].text() for key in POLICY_KEYS})
    return policies


def _agent(node: Node, sources: SourceMap) -> dict[str, Any] | None:
    _record(sources, "agent_package", node)
    if node.is_null:
        return None
    entries = node.mapping(AGENT_REQUIRED + AGENT_OPTIONAL, null_ok=False)
    agent: dict[str, Any] = {}
    for key in AGENT_REQUIRED:
        if key not in entries:
            raise node.fail(f"has no {key}: (needs {', '.join(AGENT_REQUIRED)})")
    for key, child in entries.items():
        _record(sources, f"agent_package.{key}", child)
        # url: null is an uploaded MSI (see docs/gitops.md); install_args may be empty.
        if (key == "url" or key == "install_args") and child.is_null:
            agent[key] = None if key == "url" else ""
        else:
            agent[key] = child.text()
    return agent


# --- generate -------------------------------------------------------------------------------------


def slug(name: str, fallback: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:60].rstrip("-") or fallback


@dataclass
class _Library:
    """lib/*.xml: one file per distinct profile text (teams with the same profile share it); a
    file name taken by other text gets -2, -3."""

    files: dict[str, str] = field(default_factory=dict)  # stem -> text

    def file_for(self, name: str, text: str) -> str:
        for stem, known in self.files.items():
            if known == text:
                return stem
        base = slug(name, "profile")
        stem, n = base, 1
        while stem in self.files:
            n += 1
            stem = f"{base}-{n}"
        self.files[stem] = text
        return stem


def write_files(spec: dict[str, Any], directory: Path, *, premium: bool) -> list[Path]:
    """Write the spec as GitOps files under `directory`; Premium controls only when `premium`."""
    library = _Library()
    written: list[Path] = []
    default: dict[str, Any] = {}
    controls = {
        key: value
        for key, value in spec.get("controls", {}).items()
        if key in CONTROLS and (premium or key not in PREMIUM_CONTROLS)
    }
    default["controls"] = controls
    default["profiles"] = [_profile_entry(p, library, "lib") for p in spec.get("profiles", [])]
    agent = spec.get("agent_package")
    default["agent_package"] = (
        None if agent is None else {k: v for k, v in agent.items() if k != "install_args" or v}
    )
    default["policies"] = [_policy_entry(p) for p in spec.get("policies", [])]
    team_docs = []
    stems: set[str] = set()
    for team in spec.get("teams", []):
        base = stem = slug(team["name"], "team")
        n = 1
        while stem in stems:
            n += 1
            stem = f"{base}-{n}"
        stems.add(stem)
        document = {
            "name": team["name"],
            "controls": {k: v for k, v in team.get("controls", {}).items() if k in TEAM_CONTROLS},
            "profiles": [_profile_entry(p, library, "../lib") for p in team.get("profiles", [])],
            "policies": [_policy_entry(p) for p in team.get("policies", [])],
        }
        team_docs.append((stem, document))
    (directory / "teams").mkdir(parents=True, exist_ok=True)
    (directory / "lib").mkdir(parents=True, exist_ok=True)
    written.append(_write_yaml(directory / "default.yml", default, "default file: No team and settings"))
    for stem, document in team_docs:
        written.append(_write_yaml(directory / "teams" / f"{stem}.yml", document, f"team {document['name']}"))
    for stem, text in library.files.items():
        target = directory / "lib" / f"{stem}.xml"
        target.write_bytes((text.rstrip("\n") + "\n").encode())
        written.append(target)
    return written


def _profile_entry(profile: dict[str, str], library: _Library, folder: str) -> dict[str, str]:
    stem = library.file_for(profile["name"], profile["syncml"].strip())
    entry = {"path": f"{folder}/{stem}.xml"}
    if stem != profile["name"]:
        entry["name"] = profile["name"]
    return entry


def _policy_entry(policy: dict[str, str]) -> dict[str, str]:
    return {"name": policy["name"], "query": policy["query"]}


def _write_yaml(path: Path, document: dict[str, Any], kind: str) -> Path:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    path.write_text(HEADER.format(kind=kind) + text, encoding="utf-8")
    return path
