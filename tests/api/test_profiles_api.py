"""Configuration profiles through the API: validation texts, delivery, per-host status."""

from __future__ import annotations

from winmdm.domain.admin import Role

FIREWALL = """<Replace><CmdID>1</CmdID><Item>
<Target><LocURI>./Device/Vendor/MSFT/Policy/Config/DeviceLock/DevicePasswordEnabled</LocURI></Target>
<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>0</Data></Item></Replace>"""


def test_profile_is_validated_delivered_and_removed(server):
    managed = server.enroll(manual=True)
    host = server.host_id(managed)
    created = server.post(
        "/profiles", Role.MAINTAINER, json={"team_id": 0, "name": "Passcode", "syncml": FIREWALL}
    )
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["team_id"] == 0 and profile["syncml"].startswith("<Replace>")
    assert (
        server.post(
            "/profiles", Role.MAINTAINER, json={"team_id": 0, "name": "Passcode", "syncml": FIREWALL}
        ).status_code
        == 409
    )
    broken = server.post(
        "/profiles", Role.MAINTAINER, json={"team_id": 0, "name": "Broken", "syncml": "<Replace><CmdID>1"}
    )
    assert broken.status_code == 422 and broken.json()["error"]["message"]

    assert [
        p["name"] for p in server.get("/profiles", Role.OBSERVER, params={"team_id": 0}).json()["profiles"]
    ] == ["Passcode"]
    assert server.get(f"/hosts/{host}/profiles").json()["profiles"][0]["status"] == "pending"
    managed.session(server.client)  # delivered, then read back in the same session
    statuses = server.get(f"/hosts/{host}/profiles").json()["profiles"]
    assert [(p["name"], p["status"]) for p in statuses] == [("Passcode", "verified")]
    assert server.get(f"/profiles/{profile['id']}").json()["hosts"] == {"verified": 1}
    assert [h["host_id"] for h in server.get(f"/profiles/{profile['id']}/hosts").json()["hosts"]] == [host]

    assert server.delete(f"/profiles/{profile['id']}", Role.MAINTAINER).status_code == 204
    assert server.get(f"/profiles/{profile['id']}").status_code == 404
    types = [a["type"] for a in server.get("/activities").json()["activities"]]
    assert "created_windows_profile" in types and "deleted_windows_profile" in types


def test_profile_for_an_unknown_team_is_refused(server):
    answer = server.post("/profiles", Role.MAINTAINER, json={"team_id": 77, "name": "X", "syncml": FIREWALL})
    assert answer.status_code in (404, 422)
    assert answer.json()["error"]["message"]


WIFI_URI = "./Device/Vendor/MSFT/WiFi/Profile/CorpNet/WlanXml"
WIFI = """<Add><CmdID>1</CmdID><Item>
<Target><LocURI>./Device/Vendor/MSFT/WiFi/Profile/CorpNet/WlanXml</LocURI></Target>
<Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>corp-wifi</Data></Item></Add>"""


def test_a_transferred_host_trades_its_old_teams_profiles_for_the_new_ones(server):
    managed = server.enroll(manual=True)
    host = server.host_id(managed)
    wifi = server.post("/profiles", json={"team_id": 0, "name": "Wi-Fi", "syncml": WIFI}).json()
    managed.session(server.client)
    assert [(p["name"], p["status"]) for p in server.get(f"/hosts/{host}/profiles").json()["profiles"]] == [
        ("Wi-Fi", "verified")
    ]
    team = server.post("/teams", json={"name": "Kiosks"}).json()
    server.post("/profiles", json={"team_id": team["id"], "name": "Passcode", "syncml": FIREWALL})
    server.post("/hosts/transfer", json={"team_id": team["id"], "host_ids": [host]})

    assert WIFI_URI in managed.nodes
    managed.session(server.client)
    assert WIFI_URI not in managed.nodes  # the old team's Wi-Fi profile was deleted on the device
    statuses = {p["name"]: p["status"] for p in server.get(f"/hosts/{host}/profiles").json()["profiles"]}
    assert statuses == {"Passcode": "verified"}
    assert server.get(f"/profiles/{wifi['id']}").json()["hosts"] == {}
    # Deleting the team brings the host back to No team, and No team's profiles with it.
    assert server.delete(f"/teams/{team['id']}").status_code == 204
    managed.session(server.client)
    statuses = {p["name"]: p["status"] for p in server.get(f"/hosts/{host}/profiles").json()["profiles"]}
    assert statuses == {"Wi-Fi": "verified"}
    assert managed.nodes[WIFI_URI] == "corp-wifi"
