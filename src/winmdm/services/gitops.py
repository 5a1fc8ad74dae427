"""GitOps on the server (docs/gitops.md): the state as a spec (`export`), and a spec applied
(`apply`) as a plan of creates, updates and deletes, carried out through the same services the
API uses, so a GitOps refusal has the API's text. Errors are InvalidInput whose `field` is the
spec path (`teams[1].profiles[0].syncml`); the CLI shows it as file:line:key.

The spec's shape, every profile and every team name are checked before anything changes, and the
settings go first (their service checks its rules as it applies them, all or nothing). The
services each commit on their own, so a later refusal (the agent package's values, a name taken
meanwhile) leaves what came before it applied; applying again finishes the job. Applying a spec
twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from winmdm.domain.admin import Principal
from winmdm.domain.identity import Team
from winmdm.domain.management import AgentPackage, Profile
from winmdm.errors import InvalidInput
from winmdm.services.agent import AgentService
from winmdm.services.gitops_policies import policies_by_scope, scope_steps
from winmdm.services.gitops_spec import (
    CONTROLS,
    AgentPackageSpec,
    PolicySpec,
    ProfileSpec,
    Spec,
    TeamSpec,
    parse_spec,
    spec_json,
)
from winmdm.services.policies import PolicyService
from winmdm.services.profiles import MAX_NAME as MAX_PROFILE_NAME
from winmdm.services.profiles import ProfileService, parse_profile
from winmdm.services.teams import TeamService, team_name


class Settings(Protocol):
    """services/settings.py's SettingsService, as GitOps uses it."""

    def get(self) -> Any: ...

    def update(self, changes: dict[str, bool], actor: Principal | str | None) -> Any: ...

    def check(self, changes: dict[str, bool]) -> Any:
        """Raises what `update` would, changing nothing: a dry run foresees the refusals."""
        ...


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # create | update | delete
    kind: str  # setting | agent_package | team | profile | policy
    name: str
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    plan: tuple[Change, ...]
    applied: bool  # False for a dry run, and when there was nothing to do


def _shown(value: bool) -> str:
    return "true" if value else "false"


def _team_text(team: str | None) -> str:
    return "No team" if team is None else f"team {team}"


@dataclass
class _Step:
    change: Change
    run: Callable[[], None]


class GitOpsService:
    def __init__(
        self,
        *,
        settings: Settings,
        teams: TeamService,
        profiles: ProfileService,
        agent: AgentService,
        policies: PolicyService,
    ) -> None:
        self._settings = settings
        self._teams = teams
        self._profiles = profiles
        self._agent = agent
        self._policies = policies

    # -- export ------------------------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """The server as a spec: every control, No team's profiles, the agent package, the teams."""
        current = self._settings.get()
        by_team: dict[int | None, list[Profile]] = {}
        for profile in self._profiles.all_profiles():
            by_team.setdefault(profile.team_id, []).append(profile)

        def profiles(team_id: int | None) -> tuple[ProfileSpec, ...]:
            found = sorted(by_team.get(team_id, []), key=lambda p: p.name)
            return tuple(ProfileSpec(p.name, p.syncml) for p in found)

        by_scope = policies_by_scope(self._policies)

        def policies(team_id: int | None) -> tuple[PolicySpec, ...]:
            found = sorted(by_scope.get(team_id, []), key=lambda p: p.name)
            return tuple(PolicySpec(p.name, p.sql) for p in found)

        teams = tuple(
            TeamSpec(team.name, team.end_user_auth, profiles(team.id), policies(team.id))
            for team in sorted(self._teams.list(), key=lambda t: t.name)
        )
        spec = Spec(
            controls={key: bool(getattr(current, attribute)) for key, attribute in CONTROLS.items()},
            profiles=profiles(None),
            agent_package=_agent_spec(self._agent.package()),
            manages_agent_package=True,
            teams=teams,
            whole=True,
            policies=policies(None),
        )
        return spec_json(spec)

    # -- apply -------------------------------------------------------------------------------------
    def apply(self, spec: dict[str, Any], *, dry_run: bool, actor: Principal | str | None) -> Plan:
        """The plan to make the server match `spec`; carried out unless `dry_run`.

        `actor`: the admin applying (the settings service checks its role; activities name its
        email); an email alone, or None for the server's operator, also works."""
        wanted = parse_spec(spec)
        steps = self._steps(wanted, actor)
        if not dry_run:
            for step in steps:
                step.run()
        return Plan(tuple(step.change for step in steps), applied=bool(steps) and not dry_run)

    def _steps(self, spec: Spec, principal: Principal | str | None) -> list[_Step]:
        actor = principal.admin.email if isinstance(principal, Principal) else principal
        # Settings first: the settings service checks its rules (tier, manual vs migration) only
        # as it applies them, all or nothing, so a refusal there comes before any other change.
        steps: list[_Step] = []
        steps += self._settings_steps(spec, principal)
        steps += self._agent_steps(spec, actor)
        teams = {team.name: team for team in self._teams.list()}
        profiles: dict[int | None, list[Profile]] = {}
        for profile in self._profiles.all_profiles():
            profiles.setdefault(profile.team_id, []).append(profile)
        if spec.whole:
            steps += self._profile_steps(None, None, spec.profiles, profiles.get(None, []), "profiles", actor)
        if spec.policies is not None:
            steps += self._policy_steps(None, None, spec.policies, "policies", actor)
        for index, team_spec in enumerate(spec.teams):
            where = f"teams[{index}]"
            team = teams.get(team_spec.name) or _folded(teams, team_spec.name)
            steps += self._team_steps(team_spec, team, where, actor)
            existing = [] if team is None else profiles.get(team.id, [])
            steps += self._profile_steps(
                team, team_spec.name, team_spec.profiles, existing, f"{where}.profiles", actor
            )
            if team_spec.policies is not None:
                policies_at = f"{where}.policies"
                steps += self._policy_steps(team, team_spec.name, team_spec.policies, policies_at, actor)
        if spec.whole:
            kept = {team_spec.name.casefold() for team_spec in spec.teams}
            for team in sorted(teams.values(), key=lambda t: t.name):
                if team.name.casefold() not in kept:
                    steps.append(self._delete_team(team, len(profiles.get(team.id, [])), actor))
        return steps

    # -- policies (services/gitops_policies.py) ----------------------------------------------------
    def _policy_steps(
        self,
        team: Team | None,
        label: str | None,
        wanted: tuple[PolicySpec, ...],
        where: str,
        actor: str | None,
    ) -> list[_Step]:
        steps = scope_steps(
            self._policies, team, label, wanted, where=where, actor=actor, team_id_of=self._team_id
        )
        return [_Step(Change(step.action, "policy", step.name, step.detail), step.run) for step in steps]

    # -- settings and agent package ----------------------------------------------------------------
    def _settings_steps(self, spec: Spec, actor: Principal | str | None) -> list[_Step]:
        current = self._settings.get()
        changes: dict[str, bool] = {}
        steps = []
        for key, value in spec.controls.items():
            attribute = CONTROLS[key]
            before = bool(getattr(current, attribute))
            if before == value:
                continue
            changes[attribute] = value
            scope = " (No team)" if key == "enable_end_user_authentication" else ""
            change = Change(
                "update", "setting", f"controls.{key}", f"{_shown(before)} -> {_shown(value)}{scope}"
            )
            steps.append(change)
        if not changes:
            return []
        # One update: the rules between controls (manual and migration) see the whole change.
        self._check_settings(changes)

        def run() -> None:
            with _fields(_control_field):
                self._settings.update(changes, actor)

        return [_Step(steps[0], run), *(_Step(change, _nothing) for change in steps[1:])]

    def _check_settings(self, changes: dict[str, bool]) -> None:
        with _fields(_control_field):
            self._settings.check(changes)

    def _agent_steps(self, spec: Spec, actor: str | None) -> list[_Step]:
        if not spec.manages_agent_package:
            return []
        current = self._agent.package()
        wanted = spec.agent_package
        if wanted is None:
            if current is None:
                return []
            raise InvalidInput(
                "agent_package is null but the server has an agent package "
                f"({current.product_code} {current.version}); winmdm cannot remove it, so give the "
                "package here (winmdm gitops generate writes it) or leave agent_package out",
                field="agent_package",
            )
        if current is not None and _agent_spec(current) == _normalized(wanted):
            return []
        if wanted.url is None and (
            current is None or current.content is None or current.sha256 != wanted.sha256.lower()
        ):
            raise InvalidInput(
                "url is null, which means the MSI uploaded to the server, but the server has no "
                f"uploaded MSI with sha256 {wanted.sha256}; upload it (winmdm agent package set --file) "
                "or give its url",
                field="agent_package.url",
            )
        action = "create" if current is None else "update"
        source = wanted.url or "the uploaded MSI"
        change = Change(action, "agent_package", f"{wanted.product_code} {wanted.version}", source)

        def run() -> None:
            with _fields(lambda field: f"agent_package.{'url' if field == 'content' else field}"):
                self._agent.set_package(
                    wanted.product_code,
                    wanted.version,
                    wanted.install_args,
                    content=current.content if wanted.url is None and current is not None else None,
                    url=wanted.url,
                    sha256=wanted.sha256 if wanted.url is not None else None,
                    actor=actor,
                )

        return [_Step(change, run)]

    # -- teams and profiles ------------------------------------------------------------------------
    def _team_steps(self, spec: TeamSpec, team: Team | None, where: str, actor: str | None) -> list[_Step]:
        with _fields(lambda field: f"{where}.name"):
            name = team_name(spec.name)
        wanted_auth = spec.end_user_authentication
        if team is None:
            auth = bool(wanted_auth)
            change = Change("create", "team", name, f"end-user authentication {'on' if auth else 'off'}")
            return [_Step(change, lambda: self._create_team(name, auth, where, actor))]
        details = []
        if team.name != name:
            details.append(f"renamed from {team.name}")
        if wanted_auth is not None and wanted_auth != team.end_user_auth:
            details.append(f"end-user authentication {'off -> on' if wanted_auth else 'on -> off'}")
        if not details:
            return []

        def run() -> None:
            with _fields(lambda field: f"{where}.{_team_field(field)}"):
                self._teams.update(team.id, name=name, end_user_authentication=wanted_auth, actor=actor)

        return [_Step(Change("update", "team", name, "; ".join(details)), run)]

    def _create_team(self, name: str, auth: bool, where: str, actor: str | None) -> None:
        with _fields(lambda field: f"{where}.{_team_field(field)}"):
            self._teams.create(name, end_user_authentication=auth, actor=actor)

    def _delete_team(self, team: Team, profile_count: int, actor: str | None) -> _Step:
        detail = "its hosts move to No team; its enrollment secrets stop working"
        if profile_count:
            detail += f"; its {profile_count} profile(s) are removed from its hosts"
        return _Step(
            Change("delete", "team", team.name, detail), lambda: self._teams.delete(team.id, actor=actor)
        )

    def _profile_steps(
        self,
        team: Team | None,
        team_label: str | None,
        wanted: tuple[ProfileSpec, ...],
        existing: list[Profile],
        where: str,
        actor: str | None,
    ) -> list[_Step]:
        by_name = {profile.name: profile for profile in existing}
        listed = {profile.name for profile in wanted}
        text = _team_text(team_label)
        deletes, changes = [], []
        for profile in sorted(existing, key=lambda p: p.name):
            if profile.name not in listed:
                step = _Step(Change("delete", "profile", profile.name, text), self._remover(profile, actor))
                deletes.append(step)
        for index, spec in enumerate(wanted):
            path = f"{where}[{index}]"
            current = by_name.get(spec.name)
            if current is not None and current.syncml == spec.syncml.strip():
                continue
            _check_profile(spec, path)
            add = self._adder(team, team_label, spec, path, actor)
            if current is None:
                changes.append(_Step(Change("create", "profile", spec.name, text), add))
                continue
            remove = self._remover(current, actor)

            def replace(remove: Callable[[], None] = remove, add: Callable[[], None] = add) -> None:
                remove()
                add()

            detail = f"{text}: content changed; hosts get the new profile"
            changes.append(_Step(Change("update", "profile", spec.name, detail), replace))
        return deletes + changes

    def _remover(self, profile: Profile, actor: str | None) -> Callable[[], None]:
        return lambda: self._profiles.remove_profile(profile.id, actor=actor)

    def _adder(
        self, team: Team | None, team_label: str | None, spec: ProfileSpec, path: str, actor: str | None
    ) -> Callable[[], None]:
        def run() -> None:
            # A team created by this apply has no id yet when the plan is made.
            team_id = None if team_label is None else (team.id if team else self._team_id(team_label))
            with _fields(lambda field: f"{path}.{field or 'syncml'}"):
                self._profiles.add_profile(team_id, spec.name, spec.syncml, actor=actor)

        return run

    def _team_id(self, name: str) -> int:
        for team in self._teams.list():
            if team.name == name:
                return team.id
        raise InvalidInput(f"team {name} was not created", field="teams")


# --- helpers --------------------------------------------------------------------------------------


def _nothing() -> None:
    return None


def _folded(teams: dict[str, Team], name: str) -> Team | None:
    for team in teams.values():
        if team.name.casefold() == name.casefold():
            return team
    return None


def _control_field(field: str | None) -> str:
    """A settings error names `mdm.<setting>` (or the setting); GitOps names the control."""
    last = (field or "").rsplit(".", 1)[-1]
    for key, attribute in CONTROLS.items():
        if last in (key, attribute):
            return f"controls.{key}"
    return "controls"


def _team_field(field: str | None) -> str:
    return "controls.enable_end_user_authentication" if field == "end_user_authentication" else "name"


def _check_profile(spec: ProfileSpec, path: str) -> None:
    """What ProfileService.add_profile checks, before anything changes."""
    if len(spec.name) > MAX_PROFILE_NAME:
        raise InvalidInput(
            f"the profile name is {len(spec.name)} characters long; the limit is {MAX_PROFILE_NAME}",
            field=f"{path}.name",
        )
    with _fields(lambda field: f"{path}.{field or 'syncml'}"):
        parse_profile(spec.syncml)


@contextmanager
def _fields(relabel: Callable[[str | None], str]) -> Iterator[None]:
    """Re-labels the field of an InvalidInput raised inside as its spec path."""
    try:
        yield
    except InvalidInput as error:
        error.field = relabel(error.field)
        raise


def _agent_spec(package: AgentPackage | None) -> AgentPackageSpec | None:
    if package is None:
        return None
    return AgentPackageSpec(
        url=package.url,
        sha256=package.sha256,
        product_code=package.product_code,
        version=package.version,
        install_args=package.install_args,
    )


def _normalized(wanted: AgentPackageSpec) -> AgentPackageSpec:
    """As AgentService stores it (upper-case GUID, lower-case hex, trimmed), to compare."""
    return AgentPackageSpec(
        url=None if wanted.url is None else wanted.url.strip(),
        sha256=wanted.sha256.strip().lower(),
        product_code=wanted.product_code.strip().upper(),
        version=wanted.version.strip(),
        install_args=wanted.install_args.strip(),
    )
