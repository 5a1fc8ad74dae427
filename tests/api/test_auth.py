"""Signing in, tokens, logout and the sign-in rate limit over the API (issue 6, part 1)."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import API, PASSWORD
from winmdm.domain.admin import Role


def test_login_gives_a_token_that_signs_requests(server):
    server.admins.create("ops@corp.example", Role.MAINTAINER)
    answer = server.client.post(API + "/login", json={"email": "OPS@corp.example", "password": PASSWORD})
    assert answer.status_code == 200
    body = answer.json()
    assert body["admin"]["email"] == "ops@corp.example" and body["admin"]["role"] == "maintainer"
    me = server.client.get(API + "/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json()["email"] == "ops@corp.example" and me.json()["token_kind"] == "session"


def test_wrong_password_and_unknown_email_read_the_same(server):
    server.admins.create("ops@corp.example", Role.ADMIN)
    wrong = server.client.post(API + "/login", json={"email": "ops@corp.example", "password": "x" * 14})
    unknown = server.client.post(API + "/login", json={"email": "nobody@corp.example", "password": "x" * 14})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.json()["error"]["code"] == "unauthenticated"


def test_failed_sign_ins_are_rate_limited(server):
    server.admins.create("ops@corp.example", Role.ADMIN)
    for _ in range(5):
        answer = server.client.post(
            API + "/login", json={"email": "ops@corp.example", "password": "nope" * 4}
        )
        assert answer.status_code == 401
    limited = server.client.post(API + "/login", json={"email": "ops@corp.example", "password": PASSWORD})
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    server.runtime.clock.advance(timedelta(minutes=16))
    assert (
        server.client.post(
            API + "/login", json={"email": "ops@corp.example", "password": PASSWORD}
        ).status_code
        == 200
    )


def test_bad_and_missing_tokens(server):
    for headers in ({}, {"Authorization": "Bearer wmdm_s_forged"}, {"Authorization": "Basic abc"}):
        answer = server.client.get(API + "/hosts", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_session_expires_and_logout_revokes(server):
    headers = server.admins.headers(Role.OBSERVER)
    assert server.client.get(API + "/me", headers=headers).status_code == 200
    assert server.client.post(API + "/logout", headers=headers).status_code == 204
    assert server.client.get(API + "/me", headers=headers).status_code == 401
    server.admins.create("later@corp.example", Role.OBSERVER)
    later = server.admins.login("later@corp.example")
    server.runtime.clock.advance(timedelta(hours=25))
    assert server.client.get(API + "/me", headers=later).status_code == 401


def test_api_tokens_act_with_their_owners_role_until_revoked(server):
    created = server.post("/api_tokens", Role.MAINTAINER, json={"name": "ci"})
    assert created.status_code == 201
    token = {"Authorization": f"Bearer {created.json()['token']}"}
    me = server.client.get(API + "/me", headers=token).json()
    assert me["role"] == "maintainer" and me["token_kind"] == "api"
    server.runtime.clock.advance(timedelta(days=30))  # API tokens do not expire
    forbidden = server.client.patch(API + "/config", headers=token, json={"mdm": {}})
    assert forbidden.status_code == 403
    listed = server.client.get(API + "/api_tokens", headers=token).json()["api_tokens"]
    assert [t["name"] for t in listed] == ["ci"]
    # Another non-admin may not revoke it; its owner may (here with the token itself).
    server.admins.create("watcher@corp.example", Role.OBSERVER)
    observer = server.client.delete(
        API + f"/api_tokens/{created.json()['id']}", headers=server.admins.login("watcher@corp.example")
    )
    assert observer.status_code == 403
    assert server.client.delete(API + f"/api_tokens/{created.json()['id']}", headers=token).status_code == 204
    assert server.client.get(API + "/me", headers=token).status_code == 401


def test_admins_manage_accounts(server):
    created = server.post(
        "/admins", json={"email": "new@corp.example", "password": PASSWORD, "role": "observer"}
    )
    assert created.status_code == 201 and created.json()["role"] == "observer"
    duplicate = server.post(
        "/admins", json={"email": "NEW@corp.example", "password": PASSWORD, "role": "observer"}
    )
    assert duplicate.status_code == 409
    bad_role = server.post("/admins", json={"email": "x@corp.example", "password": PASSWORD, "role": "owner"})
    assert bad_role.status_code == 422 and bad_role.json()["error"]["field"] == "role"
    short = server.post("/admins", json={"email": "y@corp.example", "password": "short", "role": "observer"})
    assert short.status_code == 422
    emails = [a["email"] for a in server.get("/admins").json()["admins"]]
    assert "new@corp.example" in emails
    assert server.delete(f"/admins/{created.json()['id']}").status_code == 204
    assert (
        server.client.post(
            API + "/login", json={"email": "new@corp.example", "password": PASSWORD}
        ).status_code
        == 401
    )
