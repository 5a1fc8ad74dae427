"""The policies part of a GitOps plan (docs/gitops.md, docs/policies.md): a scope whose
`policies` key is given gets exactly the listed policies; one without the key is left alone.

A policy whose query changed is replaced (deleted and created again): answers to the old query
say nothing about the new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from winmdm.domain.identity import Team
from winmdm.domain.osquery import Policy
from winmdm.errors import InvalidInput
from winmdm.services.gitops_spec import PolicySpec
from winmdm.services.policies import PolicyService, policy_name, policy_sql


@dataclass(frozen=True, slots=True)
class PolicyStep:
    action: str  # create | update | delete
    name: str
    detail: str
    run: Callable[[], None]


def policies_by_scope(service: PolicyService) -> dict[int | None, list[Policy]]:
    """Every policy by team id (None: the global ones)."""
    found: dict[int | None, list[Policy]] = {}
    for policy in service.all_policies():
        found.setdefault(policy.team_id, []).append(policy)
    return found


def scope_steps(
    service: PolicyService,
    team: Team | None,
    label: str | None,
    wanted: tuple[PolicySpec, ...],
    *,
    where: str,
    actor: str | None,
    team_id_of: Callable[[str], int],
) -> list[PolicyStep]:
    """The steps for one scope: `label` None is the global policies; else the team named so,
    `team` None when this apply creates it (its id is looked up with `team_id_of` as it runs)."""
    if label is None:
        existing = policies_by_scope(service).get(None, [])
        return policy_steps(
            service, wanted, existing, scope="global", team_id=lambda: None, where=where, actor=actor
        )
    existing = [] if team is None else policies_by_scope(service).get(team.id, [])
    team_id = (lambda: team.id) if team is not None else (lambda: team_id_of(label))
    return policy_steps(
        service, wanted, existing, scope=f"team {label}", team_id=team_id, where=where, actor=actor
    )


def policy_steps(
    service: PolicyService,
    wanted: tuple[PolicySpec, ...],
    existing: list[Policy],
    *,
    scope: str,
    team_id: Callable[[], int | None],
    where: str,
    actor: str | None,
) -> list[PolicyStep]:
    """Deletes first, then creates and replacements; every listed policy is checked now, so a
    bad one stops the plan before anything changes. `team_id` is asked when a step runs: a
    team created by the same apply has no id when the plan is made."""
    by_name = {policy.name: policy for policy in existing}
    listed = {policy.name for policy in wanted}
    deletes = [
        PolicyStep("delete", policy.name, scope, _deleter(service, policy, actor))
        for policy in sorted(existing, key=lambda p: p.name)
        if policy.name not in listed
    ]
    changes = []
    for index, spec in enumerate(wanted):
        path = f"{where}[{index}]"
        name, query = _checked(spec, path)
        current = by_name.get(name)
        if current is not None and current.sql == query:
            continue
        add = _adder(service, name, query, team_id, path, actor)
        if current is None:
            changes.append(PolicyStep("create", name, scope, add))
            continue
        remove = _deleter(service, current, actor)

        def replace(remove: Callable[[], None] = remove, add: Callable[[], None] = add) -> None:
            remove()
            add()

        changes.append(PolicyStep("update", name, f"{scope}: query changed; hosts answer it anew", replace))
    return deletes + changes


def _checked(spec: PolicySpec, path: str) -> tuple[str, str]:
    try:
        return policy_name(spec.name), policy_sql(spec.query)
    except InvalidInput as error:
        error.field = f"{path}.{'query' if error.field == 'sql' else 'name'}"
        raise


def _deleter(service: PolicyService, policy: Policy, actor: str | None) -> Callable[[], None]:
    return lambda: service.delete(policy.id, actor=actor)


def _adder(
    service: PolicyService,
    name: str,
    query: str,
    team_id: Callable[[], int | None],
    path: str,
    actor: str | None,
) -> Callable[[], None]:
    def run() -> None:
        try:
            service.create(name, query, team_id(), actor=actor)
        except InvalidInput as error:
            error.field = f"{path}.{'query' if error.field == 'sql' else 'name'}"
            raise

    return run
