"""Teams, end-user authentication and enrollment secrets through the API (docs/api.md "Teams")."""

from __future__ import annotations

import pytest

from tests.api.conftest import DISCOVERY
from tests.support.bulk import enroll_with_package
from tests.support.device import EnrollmentRefused, WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.admin import Role
from winmdm.services.bulk import bulk_upn


def test_team_lifecycle(server):
    created = server.post("/teams", json={"name": "  Laptops ", "end_user_authentication": True})
    assert created.status_code == 201
    team = created.json()
    assert team["name"] == "Laptops" and team["end_user_authentication"] is True
    assert server.post("/teams", json={"name": "laptops"}).status_code == 409
    reserved = server.post("/teams", json={"name": "No team"})
    assert reserved.status_code == 422 and reserved.json()["error"]["field"] == "name"

    edited = server.patch(
        f"/teams/{team['id']}", json={"name": "Field laptops", "end_user_authentication": False}
    )
    assert edited.json()["name"] == "Field laptops" and edited.json()["end_user_authentication"] is False
    assert [t["name"] for t in server.get("/teams", Role.OBSERVER).json()["teams"]] == ["Field laptops"]
    assert server.get(f"/teams/{team['id']}").json()["name"] == "Field laptops"

    host = server.host_id(server.enroll(manual=True))
    server.post("/hosts/transfer", json={"team_id": team["id"], "host_ids": [host]})
    assert server.delete(f"/teams/{team['id']}").status_code == 204
    assert server.get(f"/teams/{team['id']}").status_code == 404
    assert server.get(f"/hosts/{host}").json()["team"] == {"id": 0, "name": "No team"}
    types = [a["type"] for a in server.get("/activities").json()["activities"]]
    assert {"created_team", "edited_team", "deleted_team"} <= set(types)


def test_enrollment_secrets_are_shown_once_rotated_and_revoked(server):
    team = server.post("/teams", json={"name": "Kiosks"}).json()
    created = server.post(f"/teams/{team['id']}/enrollment_secrets", Role.MAINTAINER)
    assert created.status_code == 201
    secret = created.json()["secret"]
    listed = server.get(f"/teams/{team['id']}/enrollment_secrets", Role.MAINTAINER).json()[
        "enrollment_secrets"
    ]
    assert [s["id"] for s in listed] == [created.json()["id"]]
    assert "secret" not in listed[0] and listed[0]["active"] is True

    # A provisioning package with the secret puts the PC in the team, On (automatic).
    device = WindowsDevice(ux_initiated=False, not_in_oobe=True)
    enroll_with_package(server.client, device, bulk_upn("mdm.corp.example"), secret, DISCOVERY)
    managed = ManagedDevice(device)
    managed.session(server.client)
    kiosks = server.get("/hosts", params={"team_id": team["id"]}).json()["hosts"]
    assert [h["mdm_status"] for h in kiosks] == ["on_automatic"]

    rotated = server.post(f"/teams/{team['id']}/enrollment_secrets/rotate", Role.MAINTAINER).json()
    assert rotated["secret"] != secret
    states = {
        s["id"]: s["active"]
        for s in server.get(f"/teams/{team['id']}/enrollment_secrets").json()["enrollment_secrets"]
    }
    assert states == {created.json()["id"]: False, rotated["id"]: True}
    assert (
        server.delete(f"/teams/{team['id']}/enrollment_secrets/{rotated['id']}", Role.MAINTAINER).status_code
        == 204
    )
    no_team = server.post("/teams/0/enrollment_secrets", Role.MAINTAINER)
    assert no_team.status_code == 201 and no_team.json()["team_id"] == 0
    assert server.post("/teams/999/enrollment_secrets", Role.MAINTAINER).status_code == 404
    # The rotated-away secret enrolls nobody.
    with pytest.raises(EnrollmentRefused) as refused:
        enroll_with_package(server.client, WindowsDevice(), bulk_upn("mdm.corp.example"), secret, DISCOVERY)
    assert "rotated" in refused.value.fault.reason
