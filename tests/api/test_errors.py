"""One JSON error shape everywhere, bounded bodies, and the OpenAPI document (docs/api.md)."""

from __future__ import annotations

import re

from tests.api.conftest import API
from winmdm.domain.admin import Role


def _shape(answer) -> dict:
    body = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["message"]
    return body["error"]


def test_openapi_document_lists_the_api(server):
    answer = server.client.get(API + "/openapi.json")
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    for path in (
        "/login",
        "/hosts",
        "/hosts/transfer",
        "/mdm/summary",
        "/config",
        "/teams",
        "/profiles",
        "/activities",
        "/commands/{command_uuid}/results",
        "/enrollment/deep_link",
        "/spec",
    ):
        assert path in paths, path
    assert server.client.get(API + "/docs").status_code == 200


def test_unknown_endpoint_and_method(server):
    missing = server.get("/nothing-here")
    assert missing.status_code == 404
    assert "/api/v1/nothing-here" in _shape(missing)["message"]
    wrong = server.client.put(API + "/hosts", headers=server.admins.headers(Role.ADMIN))
    assert wrong.status_code == 405
    assert _shape(wrong)["code"] == "method_not_allowed"


def test_not_json_is_bad_request(server):
    answer = server.client.post(
        API + "/teams",
        content=b"{not json",
        headers={**server.admins.headers(Role.ADMIN), "content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert _shape(answer)["code"] == "bad_request"
    patch = server.client.patch(
        API + "/config",
        content=b"[1, 2]",
        headers={**server.admins.headers(Role.ADMIN), "content-type": "application/json"},
    )
    assert patch.status_code == 400
    assert "JSON object" in _shape(patch)["message"]


def test_validation_errors_name_the_field(server):
    answer = server.post("/hosts/transfer", json={"team_id": 0, "host_ids": [1, "two"]})
    assert answer.status_code == 422
    error = _shape(answer)
    assert error["code"] == "invalid"
    assert error["field"] == "host_ids[1]"
    extra = server.post("/teams", json={"name": "Laptops", "colour": "blue"})
    assert _shape(extra)["field"] == "colour"
    missing = server.post("/teams", json={})
    assert _shape(missing)["field"] == "name"
    not_bool = server.post("/teams", json={"name": "Laptops", "end_user_authentication": "yes"})
    assert _shape(not_bool)["field"] == "end_user_authentication"
    paging = server.get("/hosts", params={"per_page": 501})
    assert paging.status_code == 422 and _shape(paging)["field"] == "per_page"


def test_body_over_the_limit_is_refused_unread(server):
    limit = server.runtime.config.max_body_bytes
    big = b'{"name": "' + b"x" * limit + b'"}'
    answer = server.client.post(
        API + "/teams",
        content=big,
        headers={**server.admins.headers(Role.ADMIN), "content-type": "application/json"},
    )
    assert answer.status_code == 413
    assert str(limit) in _shape(answer)["message"]

    def chunks():
        yield b'{"name": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = server.client.post(
        API + "/teams",
        content=chunks(),
        headers={**server.admins.headers(Role.ADMIN), "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert _shape(streamed)["code"] == "too_large"


def test_the_docs_page_and_its_files_come_from_this_server(server):
    page = server.client.get(API + "/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(API + "/docs/") for s in sources), sources
    for source in sources:
        served = server.client.get(source)
        assert served.status_code == 200 and len(served.content) > 0, source
    bundle = server.client.get(API + "/docs/swagger-ui-bundle.js")
    assert (
        bundle.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in bundle.content
    )
    assert server.client.get(API + "/docs/other.js").json()["error"]["code"] == "not_found"
