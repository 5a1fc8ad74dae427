"""Signing in, tokens and admin accounts (docs/api.md "Authentication and roles", "Admins")."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from winmdm.domain.admin import Admin, AdminToken, Role
from winmdm.errors import InvalidInput
from winmdm.web.api.auth import Endpoints, SignedIn, actor, runtime_of
from winmdm.web.api.params import Body, PathId
from winmdm.web.api.views import plain

api = Endpoints("sign-in and admins")


class Credentials(Body):
    email: str
    password: str


class NewToken(Body):
    name: str


class NewAdmin(Body):
    email: str
    password: str
    role: str = Role.OBSERVER.value


def admin_view(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "email": admin.email,
        "role": admin.role.value,
        "created_at": plain(admin.created_at),
    }


def token_view(token: AdminToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "admin_id": token.admin_id,
        "kind": token.kind.value,
        "name": token.name,
        "created_at": plain(token.created_at),
        "expires_at": plain(token.expires_at),
        "revoked_at": plain(token.revoked_at),
        "last_used_at": plain(token.last_used_at),
    }


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


@api.post("/login", None)
def login(body: Credentials, request: Request) -> dict[str, Any]:
    issued = runtime_of(request).accounts.login(body.email, body.password, _client(request))
    return {"token": issued.token, "expires_at": plain(issued.expires_at), "admin": admin_view(issued.admin)}


@api.post("/logout", Role.OBSERVER, status_code=204)
def logout(request: Request, principal: SignedIn) -> Response:
    runtime_of(request).accounts.logout(principal.token_id)
    return Response(status_code=204)


@api.get("/me", Role.OBSERVER)
def me(principal: SignedIn) -> dict[str, Any]:
    return {**admin_view(principal.admin), "token_kind": principal.token_kind.value}


@api.post("/api_tokens", Role.OBSERVER, status_code=201)
def create_token(body: NewToken, request: Request, principal: SignedIn) -> dict[str, Any]:
    issued = runtime_of(request).accounts.create_api_token(
        principal.admin.id, body.name, actor=actor(principal)
    )
    return {"id": issued.token_id, "name": body.name, "token": issued.token}


@api.get("/api_tokens", Role.OBSERVER)
def list_tokens(request: Request, principal: SignedIn) -> dict[str, Any]:
    owner = None if principal.allows(Role.ADMIN) else principal.admin.id
    return {"api_tokens": [token_view(t) for t in runtime_of(request).accounts.list_tokens(owner)]}


@api.delete("/api_tokens/{token_id}", Role.OBSERVER, status_code=204)
def revoke_token(token_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).accounts.revoke_token(token_id, by=principal)
    return Response(status_code=204)


@api.get("/admins", Role.ADMIN)
def list_admins(request: Request) -> dict[str, Any]:
    return {"admins": [admin_view(a) for a in runtime_of(request).accounts.list_admins()]}


@api.post("/admins", Role.ADMIN, status_code=201)
def create_admin(body: NewAdmin, request: Request, principal: SignedIn) -> dict[str, Any]:
    try:
        role = Role(body.role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"role {body.role!r} is not a role; use one of {allowed}", field="role") from None
    admin = runtime_of(request).accounts.create_admin(body.email, body.password, role, actor=actor(principal))
    return admin_view(admin)


@api.delete("/admins/{admin_id}", Role.ADMIN, status_code=204)
def delete_admin(admin_id: PathId, request: Request, principal: SignedIn) -> Response:
    runtime_of(request).accounts.delete_admin(admin_id, actor=actor(principal))
    return Response(status_code=204)
