"""`winmdm policies` and `winmdm queries` against the real server: an admin makes a team's policy
and a global one, osquery agents with the team's enroll secret answer them over HTTPS, and the CLI
lists the counts and the failing hosts; a live query's rows come back, also while the command
waits for them (docs/policies.md, docs/agent-channel.md, docs/cli.md)."""

from __future__ import annotations

import threading

import httpx

from tests.cli.conftest import AdminCLI, assert_one_line_error
from tests.support.osquery_agent import OsqueryAgent, osquery_tls_context

DISK = "SELECT 1 FROM bitlocker_info WHERE protection_status = 1;"
FIREWALL = "SELECT 1 FROM windows_firewall_profiles WHERE enabled = 1;"


def test_policies_from_the_cli_are_answered_by_agents_and_list_failing_hosts(signed_in: AdminCLI) -> None:
    team = signed_in.json("teams", "create", "Policy laptops")
    secret = signed_in.json("enrollment-secret", "create", "--team", "Policy laptops")["secret"]
    (signed_in.cwd / "disk.sql").write_text(DISK)
    created = signed_in.json(
        "policies", "create", "--name", "Disk encrypted", "--sql-file", "disk.sql", "--team", "Policy laptops"
    )["policy"]
    assert (created["team_id"], created["sql"]) == (team["id"], DISK)
    shown = signed_in.ok("policies", "create", "--name", "Firewall on (CLI)", "--sql", FIREWALL).stdout
    assert "Created a global policy: 'Firewall on (CLI)'" in shown

    agents = [
        OsqueryAgent(
            enroll_secret=secret, hardware_uuid=f"CLI-{n}", serial=f"CLI-SN-{n}", hostname=f"CLI-PC-{n}"
        )
        for n in (1, 2)
    ]
    agents[0].answers = {DISK: [{"1": "1"}], FIREWALL: [{"1": "1"}]}
    agents[1].answers = {DISK: [], FIREWALL: [{"1": "1"}]}
    server = signed_in.server
    with httpx.Client(base_url=server.url, verify=osquery_tls_context(server.dev_ca), timeout=30) as client:
        for agent in agents:
            agent.enroll(client)
            agent.distributed_round(client)

    listed = signed_in.json("policies", "list", "--team", "Policy laptops")["policies"]
    assert [(p["name"], p["passing_host_count"], p["failing_host_count"]) for p in listed] == [
        ("Disk encrypted", 1, 1)
    ]
    table = signed_in.ok("policies", "list", "--all").stdout
    assert "Disk encrypted" in table and "Firewall on (CLI)" in table and "global" in table
    detail = signed_in.ok("policies", "show", str(created["id"])).stdout
    assert "1 passing, 1 failing" in detail and "CLI-PC-2" in detail and "CLI-PC-1" not in detail

    clash = signed_in.run(
        "policies", "create", "--name", "Disk encrypted", "--sql", DISK, "--team", "Policy laptops"
    )
    assert_one_line_error(clash, 6, "already have a policy named 'Disk encrypted'")
    missing = signed_in.run("policies", "create", "--name", "x")
    # A wrong file is a one-line refusal before anything is sent, not a traceback.
    (signed_in.cwd / "latin1.sql").write_bytes("SELECT 'é';".encode("latin-1"))
    assert_one_line_error(
        signed_in.run("policies", "create", "--name", "x", "--sql-file", "latin1.sql"), 4, "is not UTF-8 text"
    )
    (signed_in.cwd / "huge.sql").write_bytes(b"-" * (64 * 1024 + 1))
    assert_one_line_error(
        signed_in.run("policies", "create", "--name", "x", "--sql-file", "huge.sql"),
        4,
        "more than the server takes",
    )
    assert missing.returncode != 0 and "--sql or --sql-file" in missing.stderr
    assert (
        "Deleted the policy 'Disk encrypted'"
        in signed_in.ok("policies", "delete", str(created["id"]), "--yes").stdout
    )
    assert_one_line_error(
        signed_in.run("policies", "show", str(created["id"])), 3, f"no policy with id {created['id']}"
    )


def test_a_live_query_from_the_cli_waits_for_the_agents_rows(signed_in: AdminCLI) -> None:
    secret = signed_in.json("enrollment-secret", "create")["secret"]
    agent = OsqueryAgent(enroll_secret=secret, hardware_uuid="CLI-Q", serial="CLI-SN-Q", hostname="CLI-PC-Q")
    server = signed_in.server
    with httpx.Client(base_url=server.url, verify=osquery_tls_context(server.dev_ca), timeout=30) as client:
        agent.enroll(client)
        queued = signed_in.json("queries", "run", "CLI-PC-Q", "--sql", "SELECT * FROM os_version")["query"]
        assert (queued["state"], queued["sql"]) == ("pending", "SELECT * FROM os_version")
        agent.distributed_round(client)
        shown = signed_in.ok("queries", "show", "CLI-PC-Q", str(queued["id"])).stdout
        assert "done" in shown and "1 row(s)" in shown and "10.0.22631" in shown

        # --wait: the agent answers while the command waits for it.
        answering = threading.Timer(1.5, agent.distributed_round, args=(client,))
        answering.start()
        try:
            waited = signed_in.ok("queries", "run", "CLI-PC-Q", "--sql", "SELECT * FROM nope", "--wait", "30")
        finally:
            answering.join()
    assert "done" in waited.stdout and "no such table: nope" in waited.stdout
    assert_one_line_error(signed_in.run("queries", "show", "CLI-PC-Q", "999999"), 3, "no live query")
