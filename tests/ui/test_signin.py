"""Sign-in: every page wants a signed-in admin; wrong passwords and the rate limit are shown on the
page; the session cookie is HttpOnly, Secure, SameSite and host-only; signing out ends it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, PASSWORD, UIServer, close_server, open_server, screenshot
from winmdm.services.accounts import MESSAGE_WRONG_CREDENTIALS

PAGES = [
    "/",
    "/hosts",
    "/hosts/1",
    "/teams",
    "/profiles",
    "/activities",
    "/settings/mdm/windows",
    "/settings/agent",
]


@pytest.fixture(scope="module")
def lonely(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """A server of its own: the rate limit counts failures per client address, and every test
    browser comes from 127.0.0.1."""
    ui = open_server(tmp_path_factory.mktemp("ui-signin") / "data", {})
    yield ui
    close_server(ui)


def test_every_admin_page_asks_to_sign_in_first(lonely: UIServer, anonymous) -> None:
    for path in PAGES:
        anonymous.goto(lonely.url + path)
        expect(anonymous).to_have_url(re.compile(r"/login\?next="))
        expect(anonymous.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(anonymous, "signin")


def test_signing_in_returns_to_the_page_asked_for_with_a_safe_cookie(lonely: UIServer, anonymous) -> None:
    anonymous.goto(lonely.url + "/teams")
    anonymous.get_by_label("Email").fill(ADMIN)
    anonymous.get_by_label("Password").fill(PASSWORD)
    anonymous.get_by_role("button", name="Sign in").click()
    expect(anonymous).to_have_url(lonely.url + "/teams")
    expect(anonymous.get_by_role("heading", name="Teams", exact=True)).to_be_visible()
    (cookie,) = [c for c in anonymous.context.cookies() if c["name"] == "__Host-winmdm_session"]
    assert cookie["httpOnly"] and cookie["secure"]
    assert cookie["sameSite"] in ("Lax", "Strict")
    assert cookie["path"] == "/"
    assert cookie["value"].startswith("wmdm_s_")
    # Signing out ends the session: the old cookie no longer opens a page.
    anonymous.get_by_role("button", name="Sign out").click()
    expect(anonymous).to_have_url(re.compile(r"/login$"))
    expect(anonymous.get_by_role("status")).to_have_text("You signed out.")
    context = anonymous.context
    context.add_cookies([{**cookie}])
    anonymous.goto(lonely.url + "/hosts")
    expect(anonymous).to_have_url(re.compile(r"/login\?next=/hosts"))
    expect(anonymous.get_by_role("status")).to_have_text("Your session has ended. Sign in again.")


def test_a_sign_in_cannot_be_sent_from_elsewhere(lonely: UIServer, anonymous) -> None:
    """The sign-in form carries a token tied to a cookie; a POST without it is refused."""
    anonymous.goto(lonely.url + "/login")
    answer = anonymous.request.post(lonely.url + "/login", form={"email": ADMIN, "password": PASSWORD})
    assert answer.status == 403
    assert "security token is missing or wrong" in answer.text()
    assert not [c for c in anonymous.context.cookies() if c["name"] == "__Host-winmdm_session"]


def test_wrong_passwords_then_the_rate_limit_are_shown_on_the_page(lonely: UIServer, anonymous) -> None:
    anonymous.goto(lonely.url + "/login")
    for _ in range(5):
        anonymous.get_by_label("Email").fill("someone@corp.example")
        anonymous.get_by_label("Password").fill("not the password")
        anonymous.get_by_role("button", name="Sign in").click()
        expect(anonymous.get_by_role("alert")).to_have_text(MESSAGE_WRONG_CREDENTIALS)
        expect(anonymous.get_by_label("Email")).to_have_value("someone@corp.example")
    screenshot(anonymous, "signin-error")
    # The sixth attempt for that email from this address waits, right password or not...
    anonymous.get_by_label("Email").fill("someone@corp.example")
    anonymous.get_by_label("Password").fill("maybe this one")
    anonymous.get_by_role("button", name="Sign in").click()
    alert = anonymous.get_by_role("alert")
    expect(alert).to_have_text(
        re.compile(
            r"^Too many failed sign-ins for this email from this address\. Try again in \d+ minutes?\.$"
        )
    )
    assert anonymous.url.endswith("/login")
    # ...but another admin behind the same address (an office NAT) is not locked out.
    anonymous.get_by_label("Email").fill(ADMIN)
    anonymous.get_by_label("Password").fill(PASSWORD)
    anonymous.get_by_role("button", name="Sign in").click()
    expect(anonymous).not_to_have_url(re.compile(r"/login"))
