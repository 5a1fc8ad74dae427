"""Settings > MDM > Windows (the Windows MDM switch, Premium's end-user experience, Entra, the
sign-in page's identity provider, the check-in schedule) and Settings > Agent package.

The switch and the end-user experience go through SettingsService.update, as the API's PATCH
/config does, so the UI shows the service's own error next to the field it names.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.admin import Role
from winmdm.errors import InvalidInput
from winmdm.services.endpoints import AUTHENTICATION_PATH, TERMS_PATH
from winmdm.services.settings import MANUAL, MIGRATION, WINDOWS_ENABLED
from winmdm.web.api.app import MAX_UPLOAD_BYTES
from winmdm.web.ui import render
from winmdm.web.ui.forms import FORM_LIMIT
from winmdm.web.ui.page import Page, admin_page

WINDOWS_PATH = "/settings/mdm/windows"
AGENT_PATH = "/settings/agent"
AGENT_UPLOAD_LIMIT = MAX_UPLOAD_BYTES + FORM_LIMIT  # the API's MSI limit, and the form around it
EXPERIENCES = ("automatic", "manual")


def _windows_page(
    page: Page, *, status: int = 200, values: dict[str, Any] | None = None, **extra
) -> Response:
    runtime = page.runtime
    base = runtime.endpoints.base_url
    return page.render(
        "settings_windows.html",
        status=status,
        title="Settings: Windows MDM",
        tab="windows",
        license=runtime.settings.license(),
        values=values or runtime.settings.get().as_dict(),
        errors=extra.pop("errors", {}),
        config=runtime.config,
        endpoints=runtime.endpoints,
        enroll_url=base + "/enroll",
        signin_callback=base + AUTHENTICATION_PATH + "/callback",
        terms_callback=base + TERMS_PATH + "/callback",
        poll=runtime.config.poll_schedule,
        poll_text=str(runtime.config.poll_schedule),
        **extra,
    )


@admin_page("settings")
def windows(page: Page) -> Response:
    return _windows_page(page)


def windows_changes(page: Page) -> dict[str, bool]:
    """The form as settings: the switch always; the end-user experience only when it was sent
    (the section is hidden, and not sent, while Windows MDM is off). Manual is the manual
    setting; the migration box, unchecked or hidden, is false."""
    form = page.form
    changes = {WINDOWS_ENABLED: form.flag("windows_enabled_and_configured")}
    if form.has("end_user_experience"):
        experience = form.text("end_user_experience")
        if experience not in EXPERIENCES:
            raise InvalidInput("choose Automatic or Manual", field="mdm." + MANUAL)
        changes[MANUAL] = experience == "manual"
        changes[MIGRATION] = form.flag("windows_migration_enabled")
    elif form.has("windows_migration_enabled"):
        changes[MIGRATION] = form.flag("windows_migration_enabled")
    return changes


@admin_page("settings", needs=Role.ADMIN)
def save_windows(page: Page) -> Response:
    settings = page.runtime.settings
    changes: dict[str, bool] = {}
    try:
        changes = windows_changes(page)
        settings.update(changes, page.principal)
    except InvalidInput as exc:
        values = settings.get().as_dict() | changes  # what the admin sent, to correct it
        field = exc.field or ""
        known = {"mdm." + key for key in (WINDOWS_ENABLED, MANUAL, MIGRATION)}
        errors = {field: exc.message} if field in known else {}
        return _windows_page(
            page,
            status=422,
            values=values,
            errors=errors,
            form_error=None if errors else exc.message,
        )
    return render.redirect(WINDOWS_PATH, notice="Windows MDM settings saved.")


# -- agent package ----------------------------------------------------------------------------


def _agent_page(page: Page, *, status: int = 200, **extra) -> Response:
    return page.render(
        "settings_agent.html",
        status=status,
        title="Settings: Agent package",
        tab="agent",
        package=page.runtime.agent.package(),
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


@admin_page("settings")
def agent(page: Page) -> Response:
    return _agent_page(page)


@admin_page("settings", needs=Role.MAINTAINER, limit=AGENT_UPLOAD_LIMIT)
def save_agent(page: Page) -> Response:
    form = page.form
    source = form.text("source")
    values = {k: form.text(k) for k in ("product_code", "version", "install_args", "url", "sha256")}
    try:
        if source == "upload":
            upload = form.file("msi")
            if upload is None:
                raise InvalidInput("choose the MSI file to upload", field="content")
            page.runtime.agent.set_package(
                values["product_code"],
                values["version"],
                values["install_args"],
                content=upload.data,
                actor=page.actor,
            )
        else:
            page.runtime.agent.set_package(
                values["product_code"],
                values["version"],
                values["install_args"],
                url=values["url"],
                sha256=values["sha256"],
                actor=page.actor,
            )
    except InvalidInput as exc:
        field = exc.field or "form"
        return _agent_page(
            page, status=422, errors={f"{source or 'url'}.{field}": exc.message}, values=values, source=source
        )
    return render.redirect(AGENT_PATH, notice="Agent package saved. Hosts enrolling from now on get it.")


def routes() -> list[Route]:
    return [
        Route("/settings", lambda request: render.redirect(WINDOWS_PATH), methods=["GET"]),
        Route(WINDOWS_PATH, windows, methods=["GET"]),
        Route(WINDOWS_PATH, save_windows, methods=["POST"]),
        Route(AGENT_PATH, agent, methods=["GET"]),
        Route(AGENT_PATH, save_agent, methods=["POST"]),
    ]
