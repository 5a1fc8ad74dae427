"""An id no id column can hold (INTEGER: 32-bit on PostgreSQL) is the client's mistake, never a
database error: the API answers 422 naming the field, the UI a 404 page or its filter error."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import SERVER
from winmdm.domain.admin import Role
from winmdm.web.app import create_app
from winmdm.web.ids import MAX_ID
from winmdm.web.ui.session import CSRF_FIELD, SESSION_COOKIE, csrf_token

HUGE = (MAX_ID + 1, 2**63, 10**20)
SYNCML = "<Get><CmdID>1</CmdID><Item><Target><LocURI>./DevDetail/SwV</LocURI></Target></Item></Get>"


def api_requests(n: int) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/hosts/{n}", {}),
        ("DELETE", f"/hosts/{n}", {}),
        ("GET", f"/hosts/{n}/profiles", {}),
        ("GET", f"/hosts/{n}/activities", {}),
        ("GET", f"/hosts?team_id={n}", {}),
        ("GET", f"/activities?host_id={n}", {}),
        ("GET", f"/mdm/summary?team_id={n}", {}),
        ("GET", f"/teams/{n}", {}),
        ("PATCH", f"/teams/{n}", {"json": {"name": "x"}}),
        ("DELETE", f"/teams/{n}", {}),
        ("GET", f"/teams/{n}/enrollment_secrets", {}),
        ("POST", f"/teams/{n}/enrollment_secrets", {}),
        ("POST", f"/teams/{n}/enrollment_secrets/rotate", {}),
        ("DELETE", f"/teams/0/enrollment_secrets/{n}", {}),
        ("GET", f"/profiles?team_id={n}", {}),
        ("GET", f"/profiles/{n}", {}),
        ("GET", f"/profiles/{n}/hosts", {}),
        ("DELETE", f"/profiles/{n}", {}),
        ("POST", "/profiles", {"json": {"team_id": n, "name": "p", "syncml": SYNCML}}),
        ("POST", "/hosts/transfer", {"json": {"team_id": n, "host_ids": [1]}}),
        ("POST", "/hosts/transfer", {"json": {"team_id": 0, "host_ids": [n]}}),
        ("POST", f"/hosts/{n}/commands", {"json": {"syncml": SYNCML}}),
        ("POST", f"/hosts/{n}/reboot", {}),
        ("POST", f"/hosts/{n}/wipe", {}),
        ("POST", f"/hosts/{n}/unenroll", {}),
        ("POST", f"/hosts/{n}/refetch", {}),
        ("DELETE", f"/api_tokens/{n}", {}),
        ("DELETE", f"/admins/{n}", {}),
    ]


@pytest.mark.parametrize("n", [*HUGE, -(10**20)])
def test_api_refuses_ids_past_the_id_columns(server, n):
    client = TestClient(create_app(server.runtime), base_url=SERVER, raise_server_exceptions=False)
    headers = server.admins.headers(Role.ADMIN)
    for method, path, kwargs in api_requests(n):
        answer = client.request(method, "/api/v1" + path, headers=headers, **kwargs)
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.json()["error"]["field"], (method, path, answer.text)


def test_api_largest_id_is_simply_not_found(server):
    assert server.get(f"/hosts/{MAX_ID}").status_code == 404
    assert server.get(f"/teams/{MAX_ID}").status_code == 404


def test_ui_pages_refuse_ids_past_the_id_columns(server):
    client = TestClient(create_app(server.runtime), base_url=SERVER, raise_server_exceptions=False)
    token = server.admins.headers(Role.ADMIN)["Authorization"].removeprefix("Bearer ")
    client.cookies.set(SESSION_COOKIE, token)
    form = {CSRF_FIELD: csrf_token(server.runtime, token)}
    for n in HUGE:
        for path in (f"/hosts/{n}", f"/teams/{n}", f"/profiles/{n}"):
            assert client.get(path).status_code == 404, path
        for path in (
            f"/hosts/{n}/refetch",
            f"/hosts/{n}/delete",
            f"/teams/{n}/delete",
            f"/teams/0/secrets/{n}/revoke",
            f"/profiles/{n}/delete",
            f"/settings/admins/{n}/delete",
            f"/settings/api-tokens/{n}/revoke",
        ):
            answer = client.post(path, data=form)
            assert answer.status_code == 404, (path, answer.status_code, answer.text[:300])
        for path in (f"/hosts?team_id={n}", f"/hosts?page={n}", f"/activities?host_id={n}"):
            answer = client.get(path)
            assert answer.status_code == 400, (path, answer.status_code)
            assert "must be" in answer.text
        for path in (f"/?team_id={n}", f"/profiles?team_id={n}"):
            assert client.get(path).status_code == 200, path
        answer = client.post("/hosts/1/transfer", data={**form, "team_id": str(n)})
        assert answer.status_code in (404, 422), answer.text[:300]
