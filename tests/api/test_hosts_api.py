"""Hosts, MDM summary, transfer, delete, commands and activities through the API, with hosts
enrolled by the Windows emulator (issue 6 part 2; seed "Enrollment and turning on MDM")."""

from __future__ import annotations

from winmdm.domain.admin import Role


def _ids(answer) -> list[int]:
    assert answer.status_code == 200, answer.text
    return [h["id"] for h in answer.json()["hosts"]]


def test_status_filters_team_filter_search_and_paging(server):
    manual = server.host_id(server.enroll(manual=True, email="alice@corp.example"))
    automatic = server.host_id(server.enroll(manual=False, email="bob@corp.example"))
    pending = server.host_id(server.enroll(manual=True, email="carol@corp.example", session=False))

    assert _ids(server.get("/hosts", Role.OBSERVER, params={"mdm_status": "on_manual"})) == [manual]
    assert _ids(server.get("/hosts", params={"mdm_status": "on_automatic"})) == [automatic]
    assert _ids(server.get("/hosts", params={"mdm_status": "pending"})) == [pending]
    assert _ids(server.get("/hosts", params={"mdm_status": "off"})) == []
    bad = server.get("/hosts", params={"mdm_status": "on"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "mdm_status"
    assert "on_manual" in bad.json()["error"]["message"]

    # New hosts land in No team (team_id 0).
    assert _ids(server.get("/hosts", params={"team_id": 0})) == [manual, automatic, pending]
    assert _ids(server.get("/hosts", params={"query": "BOB@corp"})) == [automatic]

    first = server.get("/hosts", params={"per_page": 2, "page": 1}).json()
    second = server.get("/hosts", params={"per_page": 2, "page": 2}).json()
    assert first["total"] == second["total"] == 3
    assert [h["id"] for h in first["hosts"] + second["hosts"]] == [manual, automatic, pending]

    row = server.get("/hosts", params={"mdm_status": "on_manual"}).json()["hosts"][0]
    assert row["mdm_status_label"] == "On (manual)"
    assert row["team_name"] == "No team" and row["idp_username"] == "alice@corp.example"


def test_host_details_show_status_tooltip_path_and_usernames(server):
    host = server.host_id(server.enroll(manual=True, email="alice@corp.example"))
    detail = server.get(f"/hosts/{host}", Role.OBSERVER).json()
    assert detail["mdm"]["status"] == "on_manual"
    assert detail["mdm"]["status_tooltip"] == "MDM was turned on manually. End users can turn MDM off."
    assert detail["mdm"]["idp_username"] == "alice@corp.example"
    assert "end_user_username" in detail["mdm"]
    assert detail["mdm"]["enrollment_path"]
    assert detail["team"] == {"id": 0, "name": "No team"}
    assert detail["inventory"]["serial"] is None or isinstance(detail["inventory"]["serial"], str)
    missing = server.get("/hosts/424242")
    assert missing.status_code == 404 and "424242" in missing.json()["error"]["message"]


def test_summary_counts_per_status_and_team(server):
    server.enroll(manual=True)
    server.enroll(manual=True, email="dave@corp.example")
    automatic = server.host_id(server.enroll(manual=False, email="bob@corp.example"))
    team = server.post("/teams", json={"name": "Kiosks"}).json()
    assert server.post(
        "/hosts/transfer", Role.MAINTAINER, json={"team_id": team["id"], "host_ids": [automatic]}
    ).json() == {"transferred": 1}

    summary = server.get("/mdm/summary", Role.OBSERVER).json()
    assert summary["counts"] == {"on_automatic": 1, "on_manual": 2, "off": 0, "pending": 0}
    assert summary["total"] == 3
    by_team = {t["name"]: t["counts"] for t in summary["teams"]}
    assert by_team["No team"]["on_manual"] == 2
    assert by_team["Kiosks"]["on_automatic"] == 1
    kiosks = server.get("/mdm/summary", params={"team_id": team["id"]}).json()
    assert kiosks["total"] == 1 and kiosks["counts"]["on_automatic"] == 1


def test_transfer_keeps_team_across_re_enrollment_and_refuses_unknowns(server):
    managed = server.enroll(manual=True)
    host = server.host_id(managed)
    team = server.post("/teams", json={"name": "Engineering"}).json()
    server.post("/hosts/transfer", Role.MAINTAINER, json={"team_id": team["id"], "host_ids": [host]})
    assert server.get(f"/hosts/{host}").json()["team"] == {"id": team["id"], "name": "Engineering"}
    unknown_team = server.post("/hosts/transfer", Role.MAINTAINER, json={"team_id": 999, "host_ids": [host]})
    assert unknown_team.status_code == 404
    unknown_host = server.post(
        "/hosts/transfer", Role.MAINTAINER, json={"team_id": 0, "host_ids": [host, 31337]}
    )
    assert unknown_host.status_code == 404 and "31337" in unknown_host.json()["error"]["message"]
    assert server.get(f"/hosts/{host}").json()["team"]["id"] == team["id"]  # nothing moved
    back = server.post("/hosts/transfer", Role.MAINTAINER, json={"team_id": None, "host_ids": [host]})
    assert back.json() == {"transferred": 1}
    assert server.get(f"/hosts/{host}").json()["team"] == {"id": 0, "name": "No team"}


def test_commands_results_and_activities(server):
    managed = server.enroll(manual=True)
    host = server.host_id(managed)
    queued = server.post(
        f"/hosts/{host}/commands",
        Role.MAINTAINER,
        json={
            "syncml": "<Get><CmdID>1</CmdID><Item><Target><LocURI>./DevDetail/SwV</LocURI></Target></Item></Get>"
        },
    )
    assert queued.status_code == 202
    uuid = queued.json()["command_uuid"]
    before = server.get(f"/commands/{uuid}/results", Role.OBSERVER).json()["results"]
    assert [(r["host_id"], r["state"]) for r in before] == [(host, "pending")]
    managed.session(server.client)
    after = server.get(f"/commands/{uuid}/results").json()["results"][0]
    assert after["state"] == "done" and after["status_code"] == 200
    assert "./DevDetail/SwV" in after["raw_reply"]
    bad = server.post(f"/hosts/{host}/commands", Role.MAINTAINER, json={"syncml": "<Get><oops"})
    assert bad.status_code == 422
    assert server.get("/commands/00000000-0000-4000-8000-000000000000/results").status_code == 404

    for action in ("reboot", "unenroll", "refetch"):
        answer = server.post(f"/hosts/{host}/{action}", Role.MAINTAINER)
        assert answer.status_code == 202, (action, answer.text)
    wipe = server.post(f"/hosts/{host}/wipe", Role.MAINTAINER, json={"protected": True})
    assert wipe.status_code == 202

    feed = server.get("/activities", Role.OBSERVER).json()
    types = [a["type"] for a in feed["activities"]]
    assert types[0] == "command_wipe_protected"  # newest first
    assert "mdm_enrolled" in types and "fleet_enrolled" in types
    assert all(
        a["actor"] == "maintainer@corp.example"
        for a in feed["activities"]
        if a["type"].startswith("command_")
    )
    per_host = server.get(f"/hosts/{host}/activities").json()["activities"]
    assert {a["host_id"] for a in per_host} == {host}
    assert {"command_reboot", "command_unenroll", "command_inventory", "command_raw"} <= {
        a["type"] for a in per_host
    }
    paged = server.get("/activities", params={"per_page": 2, "page": 2}).json()
    assert paged["total"] == feed["total"] and len(paged["activities"]) == 2
    assert paged["activities"][0]["id"] == feed["activities"][2]["id"]


def test_delete_forgets_the_host_and_its_certificate_stops_working(server):
    managed = server.enroll(manual=True)
    host = server.host_id(managed)
    assert server.delete(f"/hosts/{host}", Role.MAINTAINER).status_code == 204
    assert server.get(f"/hosts/{host}").status_code == 404
    assert managed.session(server.client).header_codes == [403]  # its identity is gone
    deleted = [a for a in server.get("/activities").json()["activities"] if a["type"] == "deleted_host"]
    assert deleted and deleted[0]["actor"] == "maintainer@corp.example"
