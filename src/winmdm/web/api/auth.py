"""Bearer-token authentication and the role each endpoint needs (docs/api.md "roles").

Every route is declared through `Endpoints.add` with its role; the role is also written into the
OpenAPI document (`x-winmdm-role`), which is how the role-matrix test finds every endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from winmdm import log_context
from winmdm.domain.admin import Principal, Role
from winmdm.errors import AuthenticationFailed
from winmdm.runtime import Runtime

ROLE_KEY = "x-winmdm-role"
PUBLIC = "public"

NO_TOKEN = (
    "sign in first: send Authorization: Bearer <token> with a token from POST /api/v1/login or an API token"
)


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal(request: Request) -> Principal:
    """The signed-in admin; cached on the request so several dependencies share one lookup."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer(request)
    if token is None:
        raise AuthenticationFailed(NO_TOKEN)
    principal = runtime_of(request).accounts.authenticate(token)
    request.state.principal = principal
    log_context.bind(admin=principal.admin.email)
    return principal


SignedIn = Annotated[Principal, Depends(current_principal)]


def requires(needed: Role) -> Callable[[Request], Principal]:
    def check(request: Request) -> Principal:
        principal = current_principal(request)
        principal.require(needed)
        return principal

    return check


class Endpoints:
    """An APIRouter whose every route names the role it needs."""

    def __init__(self, tag: str) -> None:
        self.router = APIRouter(tags=[tag])

    def add(self, method: str, path: str, role: Role | None, **kwargs: Any) -> Callable:
        dependencies = list(kwargs.pop("dependencies", []))
        if role is not None:
            dependencies.append(Depends(requires(role)))
        extra = {ROLE_KEY: role.value if role is not None else PUBLIC, **kwargs.pop("openapi_extra", {})}
        return self.router.api_route(
            path, methods=[method], dependencies=dependencies, openapi_extra=extra, **kwargs
        )

    def get(self, path: str, role: Role | None, **kwargs: Any) -> Callable:
        return self.add("GET", path, role, **kwargs)

    def post(self, path: str, role: Role | None, **kwargs: Any) -> Callable:
        return self.add("POST", path, role, **kwargs)

    def put(self, path: str, role: Role | None, **kwargs: Any) -> Callable:
        return self.add("PUT", path, role, **kwargs)

    def patch(self, path: str, role: Role | None, **kwargs: Any) -> Callable:
        return self.add("PATCH", path, role, **kwargs)

    def delete(self, path: str, role: Role | None, **kwargs: Any) -> Callable:
        return self.add("DELETE", path, role, **kwargs)


def actor(principal: Principal) -> str:
    return principal.admin.email
