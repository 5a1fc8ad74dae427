"""The web UI in Debian's Chromium (Playwright, executable_path; never `playwright install`)
against real `winmdm serve` processes over HTTPS, with hosts enrolled and checked in by the
Windows device emulator, and Premium unlocked by a license signed with a test key."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.support.entra_issuer import EntraIssuer
from tests.support.license import LicenseKeys
from tests.support.oidc import TestIdP
from tests.support.server import RunningServer, start_server
from tests.ui.fleet import Fleet, build_fleet
from winmdm.services.accounts import AdminAccounts
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

CHROMIUM = os.environ.get("WINMDM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
_SCRATCH = Path(tempfile.gettempdir()) / "winmdm-ui-screenshots"
TENANT = "8d1d5a3c-6f7e-4b1a-9c2d-3e4f5a6b7c8d"
PASSWORD = "correct horse battery staple"
ADMIN = "admin@corp.example"
MAINTAINER = "maintainer@corp.example"
OBSERVER = "observer@corp.example"
VIEWPORT = {"width": 1280, "height": 860}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class UIServer:
    """A running server, a way to act on its database, and its emulated fleet."""

    server: RunningServer
    accounts: AdminAccounts
    storage: SQLStorage
    fleet: Fleet | None = None
    contexts: dict[str, dict] = field(default_factory=dict)  # email -> Playwright storage state

    @property
    def url(self) -> str:
        return self.server.url


def open_server(data_dir: Path, env: dict[str, str]) -> UIServer:
    server = start_server(data_dir, {"WINMDM_ORGANIZATION": "Corp Example", **env})
    engine = create_engine_for(f"sqlite:///{data_dir / 'winmdm.db'}")
    storage = SQLStorage(engine)
    accounts = AdminAccounts(storage, utc_now)
    for email, role in ((ADMIN, "admin"), (MAINTAINER, "maintainer"), (OBSERVER, "observer")):
        accounts.create_admin(email, PASSWORD, role, None)
    return UIServer(server, accounts, storage)


def close_server(ui: UIServer) -> None:
    ui.server.stop()
    ui.storage.close()


@pytest.fixture(scope="package")
def entra() -> Iterator[EntraIssuer]:
    with EntraIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="package")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        yield running


@pytest.fixture(scope="package")
def premium(tmp_path_factory: pytest.TempPathFactory, entra: EntraIssuer, idp: TestIdP) -> Iterator[UIServer]:
    """Premium, connected to Entra and an OIDC IdP (end-user authentication for No team), with a
    fleet: On (manual), On (automatic), Pending, Off."""
    folder = tmp_path_factory.mktemp("ui-premium")
    keys = LicenseKeys.create(folder)
    ui = open_server(
        folder / "data",
        {
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
            "WINMDM_LICENSE_PUBLIC_KEY_FILE": str(keys.public_file),
            "WINMDM_LICENSE_KEY": keys.key(),
            **idp.env(),
            "WINMDM_END_USER_AUTH": "true",
        },
    )
    try:
        idp.configure(redirect_uris=[ui.url + "/EnrollmentServer/TermsOfUse/callback"])
        ui.fleet = build_fleet(ui, entra, TENANT)
        yield ui
    finally:
        close_server(ui)


@pytest.fixture(scope="package")
def free(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """Free (no license key), no Entra, no hosts."""
    ui = open_server(tmp_path_factory.mktemp("ui-free") / "data", {})
    yield ui
    close_server(ui)


# Package scope: Playwright's sync API keeps an event loop running in this thread until it stops,
# and tests after tests/ui (asyncio.run in tests/web) need the thread free again.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"the UI tests drive Debian's Chromium at {CHROMIUM}: install it (apt-get install chromium) "
            "or run scripts/test, which does",
            pytrace=False,
        )
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


def new_context(browser: Browser, **kwargs) -> BrowserContext:
    """The dev TLS certificate is made for the test; Chromium is told to accept it."""
    return browser.new_context(ignore_https_errors=True, viewport=VIEWPORT, **kwargs)


def sign_in(page: Page, ui: UIServer, email: str, password: str = PASSWORD) -> None:
    page.goto(ui.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def watch(page: Page, problems: list[str]) -> Page:
    """Script errors and Content-Security-Policy refusals end up in `problems` (an error status
    of a page the test asked for is not one)."""

    def console(message) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"{page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    return page


@pytest.fixture
def signed_in(browser: Browser):
    """`signed_in(ui, email)` -> a page of a context signed in as that admin (signed in once per
    server and admin; later contexts reuse the session cookie). No page may log a script error
    or a CSP refusal."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def make(ui: UIServer, email: str = ADMIN, **kwargs) -> Page:
        state = ui.contexts.get(email)
        context = (
            new_context(browser, storage_state=state, **kwargs) if state else new_context(browser, **kwargs)
        )
        contexts.append(context)
        page = watch(context.new_page(), problems)
        if state is None:
            sign_in(page, ui, email)
            ui.contexts[email] = context.storage_state()
        return page

    yield make
    for context in contexts:
        context.close()
    assert problems == []


@pytest.fixture
def anonymous(browser: Browser) -> Iterator[Page]:
    context = new_context(browser)
    problems: list[str] = []
    yield watch(context.new_page(), problems)
    context.close()
    assert problems == []


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Every run takes the page's picture; with WINMDM_UPDATE_SCREENSHOTS=1 it replaces
    docs/screenshots/<name>.png (the README shows them), else it goes to a temporary folder so
    a test run leaves the checkout clean."""
    folder = SCREENSHOTS if os.environ.get("WINMDM_UPDATE_SCREENSHOTS") == "1" else _SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    assert path.stat().st_size > 1000


def csrf_of(page: Page) -> str:
    """The session's CSRF token, as every form of the page carries it."""
    return page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


def session_token(page: Page) -> str:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies["__Host-winmdm_session"]


def api(ui: UIServer, method: str, path: str, token: str, **kwargs):
    """The REST API as the same admin, to compare its answer with the page's."""
    with ui.server.client() as client:
        return client.request(
            method, ui.url + "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
