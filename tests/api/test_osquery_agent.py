"""The agent channel driven as a stock osquery drives it (tests/support/osquery_agent.py), over
the in-process app on SQLite and PostgreSQL: enrollment into a team with its secret, the node key
lifecycle, config, logs, live queries, hostile bodies, and the MDM enrollment of the same PC
joining the agent's host (docs/agent-channel.md)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
from datetime import timedelta

import pytest

from tests.api.conftest import DISCOVERY, SERVER, TENANT, Server
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from tests.support.osquery_agent import FLAGS, OsqueryAgent, compact
from winmdm.domain.admin import Role
from winmdm.domain.fleet import HostFilter, TeamScope
from winmdm.domain.models import MDMStatus
from winmdm.services.host_identity import CONFLICT_ACTIVITY, DEFAULT_MERGE_AFTER
from winmdm.services.osquery import MDM_CHECK_EVERY, MDM_DEVICE_ID_QUERY
from winmdm.services.osquery_identity import PROVEN_ACTIVITY


def team_secret(server: Server, name: str | None) -> tuple[int | None, str]:
    team_id = None if name is None else server.runtime.teams.create(name, actor=None).id
    assert server.runtime.bulk is not None
    return team_id, server.runtime.bulk.create(team_id).secret


def agent_host(server: Server, agent: OsqueryAgent):
    with server.runtime.storage.transaction() as tx:
        node = tx.osquery_nodes.by_key_hash(hashlib.sha256(agent.node_key.encode()).hexdigest())
        assert node is not None
        return tx.hosts.get(node.host_id), node


def activities(server: Server, type: str) -> list:
    with server.runtime.storage.transaction() as tx:
        return [a for a in tx.activities.list(limit=500) if a.type == type]


def _post(server: Server, endpoint: str, body: bytes, **headers: str):
    return server.client.post(
        FLAGS[endpoint], content=body, headers={"Content-Type": "application/json", **headers}
    )


def mdm_enroll(server: Server, serial: str) -> ManagedDevice:
    """The same PC turns MDM on in Settings (Entra) and runs its first management sessions."""
    device = WindowsDevice(not_in_oobe=True, ux_initiated=True)
    device.enroll(
        server.client,
        DISCOVERY,
        email="alice@corp.example",
        token=server.entra.token(
            tenant_id=TENANT, audience=SERVER, issued_at=server.runtime.clock(), upn="alice@corp.example"
        ),
    )
    managed = ManagedDevice(device, serial=serial)
    managed.session(server.client)
    managed.session(server.client)  # DevDetail (the serial) is read after the first session
    return managed


def test_osquery_enrolls_into_its_secrets_team_and_checks_in(server: Server, clock) -> None:
    team_id, secret = team_secret(server, "Laptops")
    agent = OsqueryAgent(enroll_secret=secret + "\n")  # the file's newline is trimmed
    answer = agent.enroll(server.client)
    assert answer == {"node_key": agent.node_key, "node_invalid": False}
    assert agent.sent[-1].response.status_code == 200
    host, node = agent_host(server, agent)
    assert (host.team_id, host.mdm_status, host.serial) == (team_id, MDMStatus.OFF, agent.serial)
    assert host.display_name == agent.hostname
    assert (node.hardware_uuid, node.platform_type, node.osquery_version) == (
        agent.hardware_uuid,
        "2",
        "5.12.1",
    )
    assert node.node_key_hash != agent.node_key and agent.node_key not in node.node_key_hash
    shown = server.get(f"/hosts/{host.id}", role=Role.OBSERVER)
    assert shown.status_code == 200 and shown.json()["team"]["id"] == team_id, shown.text
    osquery = shown.json()["osquery"]
    assert (osquery["osquery_version"], osquery["hardware_uuid"]) == ("5.12.1", agent.hardware_uuid)
    assert node.node_key_hash not in shown.text and agent.node_key not in shown.text
    [enrolled] = activities(server, "fleet_enrolled")
    assert enrolled.host_id == host.id and enrolled.details["agent"] == "osquery"

    clock.advance(timedelta(minutes=5))
    assert agent.config(server.client) == {"schedule": {}, "node_invalid": False}
    assert agent.log(server.client, "status", [{"severity": "0", "message": "osquery started"}]) == {
        "node_invalid": False
    }
    assert agent.log(server.client, "result", [{"name": "q", "columns": {}}] * 3)["node_invalid"] is False
    host, node = agent_host(server, agent)
    assert host.last_seen_at == node.last_seen_at == clock.now
    assert (node.status_logs, node.result_logs, node.last_log_at) == (1, 3, clock.now)
    # Every request after enrollment carried the key in the body and the header.
    for sent in agent.sent[1:]:
        assert sent.headers["Authorization"] == f"NodeKey {agent.node_key}"
        assert json.loads(sent.body)["node_key"] == agent.node_key


@pytest.mark.parametrize("scheme", ["NodeKey", "nodekey", "NODEKEY"])
def test_a_node_key_in_the_header_alone_is_read_in_any_case(server: Server, scheme: str) -> None:
    """HTTP authentication schemes are case-insensitive (RFC 9110 section 11.1)."""
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    answer = _post(server, "config_tls_endpoint", b"{}", Authorization=f"{scheme}  {agent.node_key}")
    assert answer.status_code == 200 and answer.json()["node_invalid"] is False, answer.text
    wrong = _post(server, "config_tls_endpoint", b"{}", Authorization=f"Bearer {agent.node_key}")
    assert wrong.status_code == 401 and wrong.json()["node_invalid"] is True


def read_log(server: Server, log_type: str) -> list[dict]:
    folder = server.runtime.config.osquery_log_dir
    assert folder is not None
    path = folder / f"{log_type}.log"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []


def test_the_agents_logs_are_kept_as_json_lines_with_their_host(server: Server) -> None:
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host, _ = agent_host(server, agent)
    status = {
        "hostIdentifier": agent.hostname,
        "severity": "1",
        "message": "zero-width \u200b, tab\t, line\nbreak",
    }
    result = {"name": "pack/usb", "action": "added", "columns": {"vendor": "Ünïcode"}, "winmdm_host_id": 999}
    agent.log(server.client, "status", [status])
    agent.log(server.client, "result", [result, result])
    assert read_log(server, "status") == [{**status, "winmdm_host_id": host.id}]
    # winmdm's host id wins over one the agent sent: the file says which host really sent it.
    assert read_log(server, "result") == [{**result, "winmdm_host_id": host.id}] * 2
    # A request without a valid node key is refused before anything is written.
    refused = _post(
        server, "logger_tls_endpoint", compact({"data": [status], "log_type": "status", "node_key": "x"})
    )
    assert refused.status_code == 401
    bad_type = _post(
        server,
        "logger_tls_endpoint",
        compact({"data": [status], "log_type": "x", "node_key": agent.node_key}),
    )
    assert bad_type.status_code == 400
    assert len(read_log(server, "status")) == 1


def test_osquery_log_dir_off_keeps_no_log_file(make_server) -> None:
    server = make_server(WINMDM_OSQUERY_LOG_DIR="off")
    assert server.runtime.config.osquery_log_dir is None
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    assert agent.log(server.client, "status", [{"message": "started"}])["node_invalid"] is False
    assert not list(server.runtime.config.data_dir.rglob("*.log"))
    assert agent_host(server, agent)[1].status_logs == 1


@pytest.mark.parametrize("how", ["unknown", "rotated", "missing"])
def test_a_wrong_enroll_secret_is_node_invalid(server: Server, how: str) -> None:
    team_id, secret = team_secret(server, "Desktops")
    if how == "rotated":
        server.runtime.bulk.rotate(team_id)
    agent = OsqueryAgent(enroll_secret={"unknown": "not-the-secret", "rotated": secret, "missing": ""}[how])
    answer = agent.enroll(server.client)
    assert agent.sent[-1].response.status_code == 401
    assert answer["node_invalid"] is True and "enroll" in answer["error"]
    assert agent.node_key is None
    with server.runtime.storage.transaction() as tx:
        assert tx.hosts.search(HostFilter(team=TeamScope.ALL))[1] == 0
    assert not activities(server, "fleet_enrolled")


def test_an_unknown_node_key_is_node_invalid_and_osquery_enrolls_again(server: Server) -> None:
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    first, _ = agent_host(server, agent)
    for endpoint in FLAGS:
        if endpoint == "enroll_tls_endpoint":
            continue
        for key in ("made-up-key", "", "k" * 300, None):
            answer = _post(server, endpoint, compact({} if key is None else {"node_key": key}))
            assert answer.status_code == 401, (endpoint, key)
            assert answer.json()["node_invalid"] is True
            assert key is None or key == "" or key not in answer.json()["error"]
    agent.node_key = "made-up-key"
    assert agent.config(server.client)["node_invalid"] is True
    assert agent.node_key is None  # osquery forgets it, and enrolls at its next request
    assert agent.config(server.client)["node_invalid"] is False
    assert [s.path for s in agent.sent[-2:]] == [FLAGS["enroll_tls_endpoint"], FLAGS["config_tls_endpoint"]]
    # The re-enrolled agent claims a host whose own agent checked in just now: a host of its own
    # with the conflict recorded (docs/host-identity.md), never the first host's.
    second, _ = agent_host(server, agent)
    assert second.id != first.id
    [conflict] = activities(server, CONFLICT_ACTIVITY)
    assert (conflict.host_id, conflict.details["claimed_host_id"]) == (second.id, first.id)
    assert conflict.details["matched"] == "hardware_uuid"


def test_a_secret_or_node_key_with_a_lone_surrogate_is_node_invalid_not_a_crash(server: Server) -> None:
    """JSON's \\ud800 escape is valid JSON but no UTF-8 text: found by scripts/fuzz (the hashing
    of the secret and of the key raised UnicodeEncodeError, a 500)."""
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    cases = [
        ("enroll_tls_endpoint", {"enroll_secret": secret + "\ud800"}),
        ("enroll_tls_endpoint", {"enroll_secret": "\udfff\ud800"}),
        ("config_tls_endpoint", {"node_key": agent.node_key + "\ud800"}),
        ("logger_tls_endpoint", {"data": [], "log_type": "status", "node_key": "\ud800"}),
        ("distributed_tls_read_endpoint", {"node_key": "\udfff\ud800"}),
        ("distributed_tls_write_endpoint", {"queries": {}, "node_key": "a\ud800b"}),
    ]
    for endpoint, body in cases:
        answer = _post(server, endpoint, json.dumps(body).encode())  # as escapes: valid JSON text
        assert answer.status_code == 401, (endpoint, answer.text)
        assert answer.json()["node_invalid"] is True and isinstance(answer.json()["error"], str)
    assert agent.config(server.client)["node_invalid"] is False  # the real key still works


def test_a_silent_agent_re_enrolls_into_its_host_and_team_with_a_new_key(server: Server, clock) -> None:
    team_id, secret = team_secret(server, "Laptops")
    _, other_secret = team_secret(server, "Kiosks")
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host, _ = agent_host(server, agent)
    old_key = agent.node_key
    clock.advance(DEFAULT_MERGE_AFTER + timedelta(days=1))
    # osquery reinstalled (its database gone), enrolling with another team's secret.
    reinstalled = OsqueryAgent(enroll_secret=other_secret)
    reinstalled.enroll(server.client)
    again, node = agent_host(server, reinstalled)
    assert again.id == host.id and again.team_id == team_id  # a known host keeps its team
    assert node.enrolled_at == clock.now and reinstalled.node_key != old_key
    assert len(activities(server, "fleet_enrolled")) == 1
    agent.node_key = old_key
    assert agent.config(server.client)["node_invalid"] is True  # the old key stopped working


def test_a_live_query_goes_to_the_agent_and_its_rows_come_back(server: Server) -> None:
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host, _ = agent_host(server, agent)
    asked = server.post(
        f"/hosts/{host.id}/queries", json={"sql": "SELECT * FROM system_info;"}, role=Role.MAINTAINER
    )
    assert asked.status_code == 202, asked.text
    query = asked.json()["query"]
    assert (query["state"], query["rows"]) == ("pending", [])
    failing = server.post(f"/hosts/{host.id}/queries", json={"sql": "SELECT * FROM nope"}).json()["query"]

    read = agent.distributed_round(server.client)
    assert read[f"winmdm_live_{query['id']}"] == "SELECT * FROM system_info;"
    assert MDM_DEVICE_ID_QUERY in read  # a Windows agent is asked for its MDM DeviceID
    assert agent.distributed_round(server.client) == {}  # nothing is sent twice

    done = server.get(f"/hosts/{host.id}/queries/{query['id']}", role=Role.OBSERVER).json()["query"]
    assert (done["state"], done["status"], done["row_count"]) == ("done", 0, 1)
    assert done["rows"] == [agent.host_details()["system_info"]]
    failed = server.get(f"/hosts/{host.id}/queries/{failing['id']}").json()["query"]
    assert (failed["state"], failed["status"], failed["message"]) == ("done", 1, "no such table: nope")
    listed = server.get(f"/hosts/{host.id}/queries").json()["queries"]
    assert [q["id"] for q in listed] == [failing["id"], query["id"]]
    [ran, _] = activities(server, "ran_live_query")
    assert ran.details["query_sql"] == "SELECT * FROM nope" and ran.actor

    # A result for a query of another host, or answered already, changes nothing.
    agent.distributed_write(server.client, {f"winmdm_live_{query['id']}": ([{"x": "y"}], 0, "")})
    assert server.get(f"/hosts/{host.id}/queries/{query['id']}").json()["query"]["rows"] == done["rows"]
    # The API's own refusals.
    assert server.post(f"/hosts/{host.id}/queries", json={"sql": "x"}, role=Role.OBSERVER).status_code == 403
    assert server.post(f"/hosts/{host.id}/queries", json={"sql": "  "}).status_code == 422
    assert server.post("/hosts/999999/queries", json={"sql": "SELECT 1"}).status_code == 404
    assert server.get(f"/hosts/{host.id}/queries/999999").status_code == 404


@pytest.mark.parametrize(
    ("node_key", "says"),
    [
        (None, "missing node key: enroll first"),
        ("  ", "missing node key: enroll first"),
        (5, "malformed node key (not a string of at most 256 characters): enroll again"),
        ("k" * 257, "malformed node key (not a string of at most 256 characters): enroll again"),
        ("k" * 256, "unknown node key: enroll again"),
    ],
)
def test_a_refused_node_key_is_named_for_what_is_wrong(server: Server, node_key: object, says: str) -> None:
    body = compact({} if node_key is None else {"node_key": node_key})
    answer = _post(server, "config_tls_endpoint", body)
    assert answer.status_code == 401 and answer.json() == {"error": says, "node_invalid": True}


def test_bodies_osquery_would_never_send_get_clear_json_errors(server: Server) -> None:
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    key = agent.node_key
    cases = [
        ("enroll_tls_endpoint", b"x" * (64 * 1024 + 1), {}, 413),
        ("enroll_tls_endpoint", b"{not json", {}, 400),
        ("enroll_tls_endpoint", b"[1, 2]", {}, 400),
        ("enroll_tls_endpoint", b"\xff\xfe", {}, 400),
        ("enroll_tls_endpoint", b"[" * 60_000, {}, 400),
        ("logger_tls_endpoint", b"[" * 500_000, {}, 400),
        ("config_tls_endpoint", compact({"node_key": 5}), {}, 401),
        ("config_tls_endpoint", b'{"node_key": NaN}', {}, 400),
        ("logger_tls_endpoint", compact({"node_key": key, "log_type": "x", "data": []}), {}, 400),
        ("logger_tls_endpoint", compact({"node_key": key, "log_type": "status", "data": {}}), {}, 400),
        ("logger_tls_endpoint", gzip.compress(b" " * (2 * 1024 * 1024)), {"Content-Encoding": "gzip"}, 413),
        ("logger_tls_endpoint", b"not gzip", {"Content-Encoding": "gzip"}, 400),
        ("logger_tls_endpoint", b"{}", {"Content-Encoding": "br"}, 400),
        ("distributed_tls_write_endpoint", compact({"node_key": key, "queries": []}), {}, 400),
        (
            "distributed_tls_write_endpoint",
            compact({"node_key": key, "queries": {"winmdm_live_1": []}, "statuses": {"winmdm_live_1": "0"}}),
            {},
            400,
        ),
        ("distributed_tls_read_endpoint", b"", {"Content-Length": "abc"}, 400),
    ]
    for endpoint, body, headers, status in cases:
        answer = _post(server, endpoint, body, **headers)
        assert answer.status_code == status, (endpoint, body[:40], answer.text)
        shown = answer.json()
        assert isinstance(shown["error"], str) and shown["node_invalid"] is (status == 401)
        assert "Traceback" not in answer.text
    # Storable whatever osquery reports: NUL bytes, lone surrogates, huge ids and rows.
    odd = {
        "node_key": key,
        "queries": {
            "winmdm_live_99999999999999999999": [],
            "winmdm_live_7": [{"a\x00": "\ud800\x00"}],
            "winmdm_live_\u00b2": [],  # a digit int() refuses
            "winmdm_policy_" + "9" * 5000: [],  # more digits than int() reads
        },
        "statuses": {"winmdm_live_7": 2**40},
    }
    assert _post(server, "distributed_tls_write_endpoint", json.dumps(odd).encode()).status_code == 200
    weird = OsqueryAgent(enroll_secret=secret, hostname="PC\x00\ud800" + "x" * 5000, serial="\x00")
    body = {"enroll_secret": secret, "host_identifier": weird.hostname, "host_details": weird.host_details()}
    enrolled = _post(server, "enroll_tls_endpoint", json.dumps(body).encode())  # \ud800 escaped
    assert enrolled.status_code == 200 and enrolled.json()["node_invalid"] is False
    # A compressed log, as --logger_tls_compress sends it, is read.
    body = gzip.compress(compact({"data": [{"m": "1"}], "log_type": "status", "node_key": key}))
    assert _post(server, "logger_tls_endpoint", body, **{"Content-Encoding": "gzip"}).status_code == 200


def test_a_gzip_body_cut_short_is_a_400_even_when_its_json_came_through_whole(server: Server) -> None:
    """A broken stream is a 400 (docs/agent-channel.md "Limits and errors"), its CRC and size
    trailer included: found by scripts/fuzz (zlib inflates what it got and said nothing)."""
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    packed = gzip.compress(compact({"data": [{"m": "1"}], "log_type": "status", "node_key": agent.node_key}))
    for cut in (1, 4, 8, 9):
        answer = _post(server, "logger_tls_endpoint", packed[:-cut], **{"Content-Encoding": "gzip"})
        assert answer.status_code == 400, (cut, answer.text)
        assert answer.json()["node_invalid"] is False and "gzip" in answer.json()["error"]
    assert _post(server, "logger_tls_endpoint", packed, **{"Content-Encoding": "gzip"}).status_code == 200


def test_a_gzip_body_of_several_members_is_read_whole(server: Server) -> None:
    """A gzip body is a series of members (RFC 1952 2.2): all are read (up to 16), and bytes
    after the last that are not a member are a 400, as is a member cut short."""
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    whole = compact({"data": [{"m": "1"}], "log_type": "status", "node_key": agent.node_key})
    half = len(whole) // 2
    members = gzip.compress(whole[:half]) + gzip.compress(whole[half:])
    answer = _post(server, "logger_tls_endpoint", members, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.json() == {"node_invalid": False}, answer.text
    _, node = agent_host(server, agent)
    assert node.status_logs == 1
    many = gzip.compress(whole) + gzip.compress(b"") * 16  # 17 members: a cheap way to burn CPU
    for broken in (members + b"junk", members[:-3], gzip.compress(whole) + gzip.compress(b"")[:5], many):
        answer = _post(server, "logger_tls_endpoint", broken, **{"Content-Encoding": "gzip"})
        assert answer.status_code == 400 and "gzip" in answer.json()["error"], answer.text
    # The limit counts every member.
    big = gzip.compress(b" " * (1024 * 1024)) * 3
    assert _post(server, "logger_tls_endpoint", big, **{"Content-Encoding": "gzip"}).status_code == 413


def test_a_result_cell_json_reads_as_infinity_is_stored_as_null_not_a_503(server: Server) -> None:
    """1e999 is valid JSON that Python reads as inf, which PostgreSQL's json type refuses: the
    write was a 503 osquery retries for ever, and the live query never got its rows."""
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host, _ = agent_host(server, agent)
    live = server.post(f"/hosts/{host.id}/queries", json={"sql": "SELECT 1"}).json()["query"]["id"]
    name = f"winmdm_live_{live}".encode()
    body = b'{"queries":{"%s":[{"a":1e999,"b":-1e999,"c":"1","d":1.5}]},"statuses":{"%s":0},"node_key":"%s"}'
    answer = _post(server, "distributed_tls_write_endpoint", body % (name, name, agent.node_key.encode()))
    assert answer.status_code == 200, answer.text
    done = server.get(f"/hosts/{host.id}/queries/{live}").json()["query"]
    assert (done["state"], done["rows"]) == ("done", [{"a": None, "b": None, "c": "1", "d": 1.5}])


def test_the_mdm_enrollment_of_the_agents_pc_joins_its_host_and_team(server: Server) -> None:
    team_id, secret = team_secret(server, "Laptops")
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    assert MDM_DEVICE_ID_QUERY in agent.distributed_round(server.client)  # MDM off: no DeviceID yet
    host, _ = agent_host(server, agent)

    managed = mdm_enroll(server, agent.serial)
    mdm_host_id = server.host_id(managed)
    # The MDM side only reports the serial of a host whose agent checks in: kept apart for now.
    assert mdm_host_id != host.id
    [conflict] = activities(server, CONFLICT_ACTIVITY)
    assert (conflict.host_id, conflict.details["claimed_host_id"]) == (mdm_host_id, host.id)

    # The agent on that PC reads the DeviceID Windows stored for the enrollment: the proof.
    agent.mdm_device_id = managed.device.device_id
    assert MDM_DEVICE_ID_QUERY in agent.distributed_round(server.client)  # asked again at once
    assert server.host_id(managed) == host.id
    with server.runtime.storage.transaction() as tx:
        joined = tx.hosts.get(host.id)
        assert tx.hosts.get(mdm_host_id) is None
    assert (joined.team_id, joined.mdm_status) == (team_id, MDMStatus.ON)
    [proven] = activities(server, PROVEN_ACTIVITY)
    assert (proven.host_id, proven.details["merged_host_id"]) == (host.id, mdm_host_id)
    # Both channels go on as one host.
    managed.session(server.client)
    assert agent.config(server.client)["node_invalid"] is False
    assert agent_host(server, agent)[0].id == host.id


def test_an_agent_on_an_mdm_host_joins_it_once_it_proves_the_device_id(server: Server, clock) -> None:
    managed = mdm_enroll(server, "7XK2M93")
    mdm_host_id = server.host_id(managed)
    _, secret = team_secret(server, "Laptops")
    agent = OsqueryAgent(enroll_secret=secret, serial="7XK2M93", mdm_device_id="SOMEONE-ELSES-ID")
    agent.enroll(server.client)
    own, _ = agent_host(server, agent)
    assert own.id != mdm_host_id  # the serial alone does not take over a host in use
    [conflict] = activities(server, CONFLICT_ACTIVITY)
    assert (conflict.details["claimed_host_id"], conflict.details["matched"]) == (mdm_host_id, "serial")
    agent.distributed_round(server.client)  # a DeviceID no enrollment has: nothing happens
    assert agent_host(server, agent)[0].id == own.id

    agent.mdm_device_id = managed.device.device_id
    assert agent.distributed_round(server.client) == {}  # asked once an hour
    clock.advance(MDM_CHECK_EVERY)
    asked = server.post(f"/hosts/{own.id}/queries", json={"sql": "SELECT * FROM os_version"}).json()["query"]
    assert MDM_DEVICE_ID_QUERY in agent.distributed_round(server.client)  # with the live query
    # The live query's result, in the same write as the proof, stays with the query.
    done = server.get(f"/hosts/{mdm_host_id}/queries/{asked['id']}").json()["query"]
    assert (done["state"], done["rows"]) == ("done", [agent.host_details()["os_version"]])
    joined, _ = agent_host(server, agent)
    assert joined.id == mdm_host_id and joined.team_id is None  # the older host keeps its team
    assert joined.mdm_status is MDMStatus.ON  # and its MDM status: the agent's host had MDM off
    with server.runtime.storage.transaction() as tx:
        assert tx.hosts.get(own.id) is None


def test_a_device_id_with_another_serial_is_a_conflict_not_a_merge(server: Server) -> None:
    managed = mdm_enroll(server, "REALSERIAL1")
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret, serial="REALSERIAL2", mdm_device_id=managed.device.device_id)
    agent.enroll(server.client)
    agent.distributed_round(server.client)
    assert agent_host(server, agent)[0].id != server.host_id(managed)
    [conflict] = activities(server, CONFLICT_ACTIVITY)
    assert conflict.details["matched"] == "mdm_device_id"


def test_no_log_line_shows_an_enroll_secret_or_node_key(server: Server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    keys = {agent.node_key}
    agent.config(server.client)
    agent.distributed_round(server.client)
    agent.log(server.client, "status", [{"message": "started"}])
    for wrong in ("wrong-key-1", "k" * 300):
        agent.node_key = wrong
        keys.add(wrong)
        agent.config(server.client)
    OsqueryAgent(enroll_secret="wrong-secret-1").enroll(server.client)
    agent.enroll_secret = secret + "x"
    agent.enroll(server.client)
    shown = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "osquery config refused" in shown and "osquery enroll refused" in shown  # the lines exist
    for value in (secret, "wrong-secret-1", secret + "x", *keys):
        assert value not in shown


def _mutations(body: object, rng: random.Random) -> object:
    """`body` with one value somewhere replaced by a JSON value osquery would never send."""
    odd = [None, True, -1, 2**70, 1.5, "", "\x00", "x" * 5000, [], {}, [[[]]], {"a": {"b": [1]}}, ["x", 1]]
    if isinstance(body, dict) and body and rng.random() < 0.8:
        key = rng.choice(list(body))
        return {**body, key: _mutations(body[key], rng)}
    if isinstance(body, list) and body and rng.random() < 0.8:
        index = rng.randrange(len(body))
        return [*body[:index], _mutations(body[index], rng), *body[index + 1 :]]
    return rng.choice(odd)


def test_mutated_osquery_bodies_get_answers_never_a_server_error(server: Server) -> None:
    _, secret = team_secret(server, None)
    agent = OsqueryAgent(enroll_secret=secret)
    agent.enroll(server.client)
    host, _ = agent_host(server, agent)
    live = server.post(f"/hosts/{host.id}/queries", json={"sql": "SELECT 1"}).json()["query"]["id"]
    key = agent.node_key
    valid = {
        "enroll_tls_endpoint": json.loads(agent.enroll_body()),
        "config_tls_endpoint": {"node_key": key},
        "logger_tls_endpoint": {
            "data": [{"name": "q", "columns": {"a": "1"}}],
            "log_type": "result",
            "node_key": key,
        },
        "distributed_tls_read_endpoint": {"node_key": key},
        "distributed_tls_write_endpoint": {
            "queries": {f"winmdm_live_{live}": [{"a": "1"}], "winmdm_policy_1": [], MDM_DEVICE_ID_QUERY: []},
            "statuses": {f"winmdm_live_{live}": 0, "winmdm_policy_1": 0, MDM_DEVICE_ID_QUERY: 0},
            "messages": {f"winmdm_live_{live}": ""},
            "stats": {},
            "node_key": key,
        },
    }
    rng = random.Random(20261205)
    seen: set[int] = set()
    for _ in range(60):
        for endpoint, body in valid.items():
            mutated = _mutations(body, rng)
            answer = _post(server, endpoint, json.dumps(mutated).encode())
            seen.add(answer.status_code)
            assert answer.status_code in (200, 400, 401), (endpoint, mutated, answer.text)
            assert answer.json()["node_invalid"] is (answer.status_code == 401), answer.text
            if answer.status_code != 200:
                assert isinstance(answer.json()["error"], str)
    assert {200, 400, 401} <= seen
