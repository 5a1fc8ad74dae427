"""Every endpoint enforces its role: the whole matrix, role x endpoint (issue 6, part 1).

The endpoints come from the served OpenAPI document, which names each one's role
(`x-winmdm-role`), so an endpoint added later is walked too; a route without a role fails.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from tests.api.conftest import API
from winmdm.domain.admin import Role
from winmdm.web.api.app import ROUTE_MODULES
from winmdm.web.api.auth import PUBLIC, ROLE_KEY


def _endpoints(server) -> list[tuple[str, str, str]]:
    document = server.client.get(API + "/openapi.json").json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            found.append((method.upper(), path, operation[ROLE_KEY]))
    return sorted(found, key=lambda e: (e[1] == "/logout", e[1], e[0]))  # logout last: it ends the session


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999999", path)


def test_every_route_declares_a_role():
    routes = [r for module in ROUTE_MODULES for r in module.api.router.routes]
    assert len(routes) > 30 and all(isinstance(r, APIRoute) for r in routes)
    for route in routes:
        assert (route.openapi_extra or {}).get(ROLE_KEY) in {*Role, PUBLIC}, route.path


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/hosts", Role.OBSERVER),
        ("GET", "/hosts/{host_id}", Role.OBSERVER),
        ("DELETE", "/hosts/{host_id}", Role.MAINTAINER),
        ("POST", "/hosts/transfer", Role.MAINTAINER),
        ("POST", "/hosts/{host_id}/wipe", Role.MAINTAINER),
        ("PATCH", "/config", Role.ADMIN),
        ("GET", "/config", Role.OBSERVER),
        ("POST", "/teams", Role.ADMIN),
        ("POST", "/teams/{team_id}/enrollment_secrets", Role.MAINTAINER),
        ("POST", "/profiles", Role.MAINTAINER),
        ("POST", "/spec", Role.ADMIN),
        ("GET", "/spec", Role.ADMIN),
        ("POST", "/admins", Role.ADMIN),
        ("GET", "/activities", Role.OBSERVER),
    ],
)
def test_the_roles_docs_api_md_names(server, method, path, role):
    declared = {(m, p): r for m, p, r in _endpoints(server)}
    assert declared[(method, path)] == role.value


def test_role_by_endpoint_matrix(server):
    headers = {role: server.admins.headers(role) for role in Role}
    checked = 0
    for method, path, needed in _endpoints(server):
        if needed == PUBLIC:
            continue
        url = API + _concrete(path)
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        # Without a token: 401, in the one error shape.
        anonymous = server.client.request(method, url, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        for role in Role:
            answer = server.client.request(method, url, json=body, headers=headers[role])
            if role.allows(Role(needed)):
                assert answer.status_code not in (401, 403), (role, method, path, answer.text)
            else:
                assert answer.status_code == 403, (role, method, path, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "forbidden"
                assert needed in error["message"] and role.value in error["message"]
            checked += 1
    assert checked >= 90
