"""Settings > Admins (the admin accounts: list, create, delete; the admin role only, as the API's
/admins) and Settings > API tokens (the signed-in admin's own tokens, any role; an admin also sees
and revokes everyone else's), over AdminAccounts (services/accounts.py).

The services get the Principal as the actor, so they check the role themselves too and show the
API's texts: a field's error next to that field, the last admin's refusal above the list.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import AdminTokenKind, Role
from winmdm.errors import Conflict, InvalidInput, NotFound
from winmdm.web.ui import render
from winmdm.web.ui.page import Page, admin_page

ADMINS_PATH = "/settings/admins"
TOKENS_PATH = "/settings/api-tokens"
TOKEN_COOKIE = "__Host-winmdm_new_api_token"
ROLES = tuple(role.value for role in (Role.OBSERVER, Role.MAINTAINER, Role.ADMIN))
_ADMIN_FIELDS = ("email", "password", "role")


# -- admin accounts ---------------------------------------------------------------------------


def _admins_page(page: Page, *, status: int = 200, **extra) -> Response:
    return page.render(
        "settings_admins.html",
        status=status,
        title="Settings: Admins",
        tab="admins",
        admins=page.runtime.accounts.list_admins(),
        roles=ROLES,
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("settings")
def admins(page: Page) -> Response:
    page.principal.require(Role.ADMIN)  # as GET /api/v1/admins: the list is the admin role's
    return _admins_page(page)


@admin_page("settings", needs=Role.ADMIN)
def create_admin(page: Page) -> Response:
    form = page.form
    email = form.text("email")
    role = form.text("role") or Role.OBSERVER.value
    try:
        admin = page.runtime.accounts.create_admin(email, form.get("password"), role, page.principal)
    except (InvalidInput, Conflict) as exc:
        field = getattr(exc, "field", None) or "email"  # a Conflict is a taken email
        errors = {field if field in _ADMIN_FIELDS else "form": exc.message}
        values = {"email": email, "role": role}  # never the password
        return _admins_page(
            page, status=422 if isinstance(exc, InvalidInput) else 409, errors=errors, values=values
        )
    return render.redirect(ADMINS_PATH, notice=f"Created the {admin.role.value} account {admin.email}.")


@admin_page("settings", needs=Role.ADMIN)
def delete_admin(page: Page) -> Response:
    admin_id = page.path_id("admin_id")
    try:
        admin = page.runtime.accounts.delete_admin(admin_id, page.principal)
    except Conflict as exc:  # the last admin
        return _admins_page(page, status=409, delete_error=exc.message)
    if admin.id == page.admin.id:  # the session went with the account
        return render.redirect("/login", notice=f"Your account {admin.email} was deleted.")
    return render.redirect(ADMINS_PATH, notice=f"Deleted the {admin.role.value} account {admin.email}.")


# -- API tokens -------------------------------------------------------------------------------


def _tokens_page(page: Page, *, status: int = 200, **extra) -> Response:
    accounts = page.runtime.accounts
    own = accounts.list_tokens(page.admin.id, kind=AdminTokenKind.API)
    others = []
    if page.can(Role.ADMIN):
        owners = {admin.id: admin.email for admin in accounts.list_admins()}
        others = [
            {"token": token, "owner": owners.get(token.admin_id, f"admin {token.admin_id}")}
            for token in accounts.list_tokens(None, kind=AdminTokenKind.API)
            if token.admin_id != page.admin.id
        ]
        others.sort(key=lambda row: (row["owner"], row["token"].id))
    return page.render(
        "settings_api_tokens.html",
        status=status,
        title="Settings: API tokens",
        tab="api-tokens",
        tokens=own,
        others=others,
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("settings")
def tokens(page: Page) -> Response:
    """Shows a token just made, once: it comes in a one-minute cookie the page then deletes, so a
    reload neither shows it again nor makes another (the POST redirected here), as a team's new
    enrollment secret does."""
    kept = page.request.cookies.get(TOKEN_COOKIE, "")
    owner, _, token = kept.partition(":")
    response = _tokens_page(page, new_token=token if owner == str(page.admin.id) and token else None)
    if kept:
        response.delete_cookie(TOKEN_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@admin_page("settings", needs=Role.OBSERVER)
def create_token(page: Page) -> Response:
    name = page.form.text("name")
    try:
        issued = page.runtime.accounts.create_api_token(page.admin.id, name, actor=page.principal)
    except InvalidInput as exc:
        return _tokens_page(page, status=422, errors={"name": exc.message}, values={"name": name})
    response = render.redirect(TOKENS_PATH, notice=f"API token {name} created.")
    response.set_cookie(
        TOKEN_COOKIE,
        f"{issued.admin.id}:{issued.token}",
        max_age=60,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


@admin_page("settings", needs=Role.OBSERVER)
def revoke_token(page: Page) -> Response:
    """Only API tokens here (a session ends by signing out); the service decides who may."""
    token_id = page.path_id("token_id")
    accounts = page.runtime.accounts
    found = [
        t for t in accounts.list_tokens(None, kind=AdminTokenKind.API, active_only=False) if t.id == token_id
    ]
    if not found:
        raise NotFound(f"API token {token_id} does not exist; it may have been deleted with its admin")
    revoked = accounts.revoke_token(token_id, by=page.principal)
    return render.redirect(TOKENS_PATH, notice=f"API token {revoked.name} revoked.")


def routes() -> list[Route]:
    return [
        Route(ADMINS_PATH, admins, methods=["GET"]),
        Route(ADMINS_PATH, create_admin, methods=["POST"]),
        Route(ADMINS_PATH + "/{admin_id:int}/delete", delete_admin, methods=["POST"]),
        Route(TOKENS_PATH, tokens, methods=["GET"]),
        Route(TOKENS_PATH, create_token, methods=["POST"]),
        Route(TOKENS_PATH + "/{token_id:int}/revoke", revoke_token, methods=["POST"]),
    ]
