"""Policies end to end on SQLite and PostgreSQL: an admin creates global and team policies over
the API, osquery agents (tests/support/osquery_agent.py) run them at their distributed reads, and
the API shows who passes and which hosts fail (docs/policies.md)."""

from __future__ import annotations

from tests.api.conftest import Server
from tests.api.test_osquery_agent import agent_host, team_secret
from tests.support.osquery_agent import OsqueryAgent
from winmdm.domain.admin import Role
from winmdm.services.osquery import POLICY_EVERY

FIREWALL = "SELECT 1 FROM windows_firewall_profiles WHERE enabled = 1;"
MDM_ON = (
    "SELECT 1 FROM registry WHERE path = "
    "'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Provisioning\\OMADM\\MDMDeviceID\\DeviceClientId';"
)


def _create(server: Server, name: str, sql: str, team_id: int | None = None, role: Role = Role.MAINTAINER):
    body = {"name": name, "sql": sql} | ({} if team_id is None else {"team_id": team_id})
    return server.post("/policies", json=body, role=role)


def test_agents_answer_their_policies_and_the_failing_hosts_are_listed(server: Server, clock) -> None:
    laptops, laptop_secret = team_secret(server, "Laptops")
    _, no_team_secret = team_secret(server, None)
    firewall = _create(server, "Firewall on", FIREWALL).json()["policy"]
    mdm = _create(server, "MDM on", MDM_ON, laptops).json()["policy"]
    assert (firewall["team_id"], mdm["team_id"]) == (None, laptops)

    passing = OsqueryAgent(enroll_secret=laptop_secret, hardware_uuid="U-1", serial="S-1", hostname="PC-1")
    passing.answers = {FIREWALL: [{"1": "1"}]}
    passing.mdm_device_id = "DEVICE-CLIENT-ID-1"  # MDM is on there: the registry value exists
    failing = OsqueryAgent(enroll_secret=laptop_secret, hardware_uuid="U-2", serial="S-2", hostname="PC-2")
    failing.answers = {FIREWALL: [{"1": "1"}]}
    other = OsqueryAgent(enroll_secret=no_team_secret, hardware_uuid="U-3", serial="S-3", hostname="PC-3")
    other.answers = {FIREWALL: []}
    for agent in (passing, failing, other):
        agent.enroll(server.client)
    read = {
        agent.hostname: set(agent.distributed_round(server.client)) for agent in (passing, failing, other)
    }
    expected = {f"winmdm_policy_{firewall['id']}", f"winmdm_policy_{mdm['id']}"}
    assert expected <= read["PC-1"] and expected <= read["PC-2"]
    assert (
        f"winmdm_policy_{firewall['id']}" in read["PC-3"] and f"winmdm_policy_{mdm['id']}" not in read["PC-3"]
    )

    listed = server.get(f"/policies?team_id={laptops}", role=Role.OBSERVER).json()["policies"]
    assert [(p["name"], p["passing_host_count"], p["failing_host_count"]) for p in listed] == [
        ("MDM on", 1, 1)
    ]
    [globals_] = server.get("/policies").json()["policies"]
    assert (globals_["passing_host_count"], globals_["failing_host_count"]) == (2, 1)
    assert len(server.get("/policies?all=true").json()["policies"]) == 2
    detail = server.get(f"/policies/{mdm['id']}").json()
    failing_id = agent_host(server, failing)[0].id
    assert detail["failing_hosts"] == [{"id": failing_id, "display_name": "PC-2"}]
    assert server.get(f"/policies/{firewall['id']}").json()["failing_hosts"][0]["display_name"] == "PC-3"
    mine = server.get(f"/hosts/{failing_id}/policies", role=Role.OBSERVER).json()["policies"]
    assert [(p["name"], p["passes"]) for p in mine] == [("Firewall on", True), ("MDM on", False)]

    # Once an hour: nothing is sent again before; then the fixed PC passes.
    assert not any(n.startswith("winmdm_policy_") for n in failing.distributed_round(server.client))
    clock.advance(POLICY_EVERY)
    failing.mdm_device_id = "DEVICE-CLIENT-ID-2"
    failing.distributed_round(server.client)
    assert server.get(f"/policies/{mdm['id']}").json()["failing_hosts"] == []
    # A query that fails on the host (no such table) is no answer either way.
    clock.advance(POLICY_EVERY)
    broken = {MDM_ON: ([], 1, "no such table: registry")}
    failing.distributed_round(server.client, lambda sql: broken.get(sql) or failing.run_sql(sql))
    mine = server.get(f"/hosts/{failing_id}/policies").json()["policies"]
    assert [p["passes"] for p in mine] == [True, None]
    counted = server.get(f"/policies/{mdm['id']}").json()["policy"]
    assert (counted["passing_host_count"], counted["failing_host_count"]) == (1, 0)

    created = [a for a in server.get("/activities").json()["activities"] if a["type"] == "created_policy"]
    assert {a["details"]["policy_name"] for a in created} == {"Firewall on", "MDM on"}


def test_answers_for_policies_that_no_longer_apply_are_ignored(server: Server, clock) -> None:
    laptops, secret = team_secret(server, "Laptops")
    kiosks = server.runtime.teams.create("Kiosks", actor=None).id
    policy = _create(server, "MDM on", MDM_ON, laptops).json()["policy"]
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host_id = agent_host(server, agent)[0].id
    read = agent.distributed_read(server.client)["queries"]
    server.runtime.hosts.transfer(kiosks, [host_id], actor=None)  # moved before it answers
    agent.distributed_write(server.client, {name: agent.run_sql(sql) for name, sql in read.items()})
    server.runtime.hosts.transfer(laptops, [host_id], actor=None)
    assert [p["passes"] for p in server.get(f"/hosts/{host_id}/policies").json()["policies"]] == [None]
    assert server.delete(f"/policies/{policy['id']}").status_code == 204
    agent.distributed_write(server.client, {f"winmdm_policy_{policy['id']}": ([], 0, "")})  # deleted
    assert server.get(f"/policies/{policy['id']}").status_code == 404
    assert server.get(f"/hosts/{host_id}/policies").json()["policies"] == []


def test_policy_input_is_checked_with_clear_errors(server: Server) -> None:
    laptops, _ = team_secret(server, "Laptops")
    assert _create(server, "Firewall on", FIREWALL).status_code == 201
    clash = _create(server, "Firewall on", FIREWALL)
    assert clash.status_code == 409 and "Firewall on" in clash.json()["error"]["message"]
    assert _create(server, "Firewall on", FIREWALL, laptops).status_code == 201  # another scope
    assert _create(server, "Firewall", FIREWALL, 999_999).status_code == 404
    for name, sql in (
        ("", FIREWALL),
        ("two\nlines", FIREWALL),
        ("x" * 256, FIREWALL),
        ("ok", " "),
        ("ok", "a\x00"),
    ):
        answer = _create(server, name, sql)
        assert answer.status_code == 422, (name, sql)
        assert answer.json()["error"]["field"] in ("name", "sql")
    assert _create(server, "Mine", FIREWALL, role=Role.OBSERVER).status_code == 403
    assert server.get("/policies?team_id=999999").status_code == 404
    assert server.get("/policies/999999").status_code == 404
    assert server.delete("/policies/999999").status_code == 404
    assert server.get("/hosts/999999/policies").status_code == 404
