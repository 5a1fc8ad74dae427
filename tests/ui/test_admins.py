"""Settings > Admins and Settings > API tokens: an admin creates and deletes accounts (errors at
their field, the last admin refused with the service's text); every admin makes API tokens shown
once, which work against the REST API until revoked on the page; an admin also revokes anyone's;
a non-admin sees no account management and its forged POSTs get the API's 403.

These tests run on the package's Free server and make their own accounts: the admin, maintainer
and observer the other UI tests sign in with stay as they are."""

from __future__ import annotations

import re

from markupsafe import escape
from playwright.sync_api import Page, expect

from tests.ui.conftest import (
    ADMIN,
    MAINTAINER,
    OBSERVER,
    PASSWORD,
    UIServer,
    api,
    csrf_of,
    screenshot,
    session_token,
)
from winmdm.domain.admin import AdminTokenKind, Role
from winmdm.web.ui.session import CSRF_REFUSED

ADMINS = "/settings/admins"
TOKENS = "/settings/api-tokens"


def emails(ui: UIServer) -> list[str]:
    return [admin.email for admin in ui.accounts.list_admins()]


def row(page: Page, table: str, text: str):
    return page.locator(f"#{table} tbody tr").filter(has_text=text)


def create_account(page: Page, email: str, password: str, role: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Create account").click()


def confirm(page: Page) -> None:
    page.once("dialog", lambda dialog: dialog.accept())


def test_an_admin_creates_accounts_that_sign_in_and_deletes_them(free: UIServer, signed_in) -> None:
    page = signed_in(free)
    page.goto(free.url + "/settings/mdm/windows")
    page.locator(".subnav").get_by_role("link", name="Admins").click()
    expect(page).to_have_url(free.url + ADMINS)
    for email, role in ((ADMIN, "admin"), (MAINTAINER, "maintainer"), (OBSERVER, "observer")):
        expect(row(page, "admins", email)).to_contain_text(role)
    expect(row(page, "admins", ADMIN)).to_contain_text("You")
    # The email is stored lower-case; the new account signs in (a new browser context).
    create_account(page, "Alice.Ops@Corp.example", PASSWORD, "maintainer")
    expect(page.get_by_role("status")).to_have_text("Created the maintainer account alice.ops@corp.example.")
    expect(row(page, "admins", "alice.ops@corp.example")).to_contain_text("maintainer")
    expect(row(page, "admins", "alice.ops@corp.example")).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d"))
    screenshot(page, "settings-admins")
    alice = signed_in(free, "alice.ops@corp.example")
    alice.goto(free.url + "/")
    expect(alice.locator(".account .who")).to_have_text("alice.ops@corp.example")
    expect(alice.locator(".account .role")).to_have_text("Role: maintainer")
    # Deleting it ends its session at once.
    confirm(page)
    row(page, "admins", "alice.ops@corp.example").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("Deleted the maintainer account alice.ops@corp.example.")
    expect(page.locator("#admins")).not_to_contain_text("alice.ops@corp.example")
    alice.reload()
    expect(alice).to_have_url(re.compile(r"/login\?next="))
    expect(alice.get_by_role("status")).to_have_text("Your session has ended. Sign in again.")
    # A second admin may delete their own account (not the last admin): signed out, told why.
    create_account(page, "bob.admin@corp.example", PASSWORD, "admin")
    expect(row(page, "admins", "bob.admin@corp.example")).to_contain_text("admin")
    bob = signed_in(free, "bob.admin@corp.example")
    bob.goto(free.url + ADMINS)
    confirm(bob)
    row(bob, "admins", "bob.admin@corp.example").get_by_role("button", name="Delete").click()
    expect(bob).to_have_url(re.compile(r"/login$"))
    expect(bob.get_by_role("status")).to_have_text("Your account bob.admin@corp.example was deleted.")
    assert "bob.admin@corp.example" not in emails(free)
    assert "alice.ops@corp.example" not in emails(free)


def test_account_errors_are_shown_at_their_field(free: UIServer, signed_in) -> None:
    page = signed_in(free)
    before = emails(free)
    page.goto(free.url + ADMINS)
    email = page.get_by_label("Email")
    password = page.get_by_label("Password")
    create_account(page, "not-an-email", PASSWORD, "observer")
    expect(page.locator("#error-email")).to_have_text(
        "email must look like name@example.com; it is 'not-an-email'"
    )
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_value("not-an-email")
    expect(password).to_have_value("")  # a password is never sent back
    expect(page.locator("#error-password")).to_have_count(0)
    # The API says the same about the same input.
    api_answer = api(
        free,
        "POST",
        "/admins",
        session_token(page),
        json={"email": "not-an-email", "password": PASSWORD, "role": "observer"},
    )
    assert api_answer.status_code == 422
    assert api_answer.json()["error"]["message"] == page.locator("#error-email").inner_text()
    create_account(page, "carol@corp.example", "too short", "maintainer")
    expect(page.locator("#error-password")).to_contain_text(
        "the password must be at least 12 characters long (it has 9)"
    )
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-email")).to_have_count(0)
    expect(email).to_have_value("carol@corp.example")
    expect(page.get_by_label("Role")).to_have_value("maintainer")
    screenshot(page, "settings-admins-error")
    # A taken email (in any case) is a Conflict, shown at the email.
    create_account(page, MAINTAINER.upper(), PASSWORD, "observer")
    expect(page.locator("#error-email")).to_have_text(
        f"an admin with the email {MAINTAINER} already exists; use another email or that account"
    )
    # A role the form never offers.
    answer = page.request.post(
        free.url + ADMINS,
        form={
            "csrf_token": csrf_of(page),
            "email": "dave@corp.example",
            "password": PASSWORD,
            "role": "owner",
        },
    )
    assert answer.status == 422
    assert "role must be admin, maintainer or observer, not &#39;owner&#39;" in answer.text()
    assert emails(free) == before


def test_the_last_admin_is_refused_with_the_services_message(free: UIServer, signed_in) -> None:
    # Only admin@corp.example has the admin role here, so the service must refuse (and nothing
    # this test does could delete the account the other tests use).
    assert [a.email for a in free.accounts.list_admins() if a.role is Role.ADMIN] == [ADMIN]
    page = signed_in(free)
    page.goto(free.url + ADMINS)
    confirm(page)
    row(page, "admins", ADMIN).get_by_role("button", name="Delete").click()
    expect(page.locator("#delete-error")).to_have_text(
        f"{ADMIN} is the last admin, and winmdm needs one to manage accounts and settings. Make "
        "another admin first, then delete this one."
    )
    expect(row(page, "admins", ADMIN)).to_have_count(1)
    page.goto(free.url + ADMINS)  # still signed in
    expect(page.get_by_role("heading", name="Admin accounts")).to_be_visible()
    assert ADMIN in emails(free)


def test_api_tokens_are_shown_once_work_and_stop_after_revoke(free: UIServer, signed_in) -> None:
    page = signed_in(free, OBSERVER)
    page.goto(free.url + "/settings/mdm/windows")
    page.locator(".subnav").get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(free.url + TOKENS)
    expect(page.locator("#other-api-tokens")).to_have_count(0)  # not an admin
    # The name is checked by the service.
    page.get_by_role("button", name="Create API token").click()
    expect(page.locator("#error-name")).to_contain_text("name must be 1 to 100 printable characters")
    expect(page.get_by_label("Token name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Token name").fill("backup script")
    page.get_by_role("button", name="Create API token").click()
    expect(page.get_by_role("status").first).to_have_text("API token backup script created.")
    token = page.locator("#new-api-token").input_value()
    assert token.startswith("wmdm_a_") and len(token) > 40
    expect(row(page, "api-tokens", "backup script")).to_contain_text("Never")
    screenshot(page, "settings-api-tokens")
    # Shown once: a reload neither shows it nor makes another.
    page.reload()
    expect(page.locator("#new-api-token")).to_have_count(0)
    assert token not in page.content()
    expect(row(page, "api-tokens", "backup script")).to_have_count(1)
    # It works against the REST API, as its owner with its owner's role.
    me = api(free, "GET", "/me", token)
    assert me.status_code == 200
    assert me.json()["email"] == OBSERVER
    assert me.json()["role"] == "observer"
    assert me.json()["token_kind"] == "api"
    page.reload()
    expect(row(page, "api-tokens", "backup script")).not_to_contain_text("Never")
    # Revoked on the page, it stops working.
    confirm(page)
    row(page, "api-tokens", "backup script").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("API token backup script revoked.")
    expect(page.locator("#api-tokens")).not_to_contain_text("backup script")
    refused = api(free, "GET", "/me", token)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]


def test_an_admin_sees_and_revokes_everyones_api_tokens(free: UIServer, signed_in) -> None:
    maintainer = signed_in(free, MAINTAINER)
    maintainer.goto(free.url + TOKENS)
    maintainer.get_by_label("Token name").fill("ci pipeline")
    maintainer.get_by_role("button", name="Create API token").click()
    token = maintainer.locator("#new-api-token").input_value()
    assert api(free, "GET", "/me", token).json()["email"] == MAINTAINER
    owner = free.accounts.find_admin(MAINTAINER)
    (record,) = [
        t for t in free.accounts.list_tokens(owner.id, kind=AdminTokenKind.API) if t.name == "ci pipeline"
    ]
    # Another non-admin may not revoke it: the service's 403.
    observer = signed_in(free, OBSERVER)
    observer.goto(free.url + TOKENS)
    answer = observer.request.post(
        f"{free.url}{TOKENS}/{record.id}/revoke", form={"csrf_token": csrf_of(observer)}, max_redirects=0
    )
    assert answer.status == 403
    assert f"token {record.id} belongs to another admin" in answer.text()
    # Nor see it.
    expect(observer.locator("main")).not_to_contain_text("ci pipeline")
    # An admin sees it with its owner, and revokes it.
    page = signed_in(free)
    page.goto(free.url + TOKENS)
    expect(page.locator("#api-tokens")).not_to_contain_text("ci pipeline")
    mine = row(page, "other-api-tokens", "ci pipeline")
    expect(mine).to_contain_text(MAINTAINER)
    expect(mine).to_contain_text(re.compile(r"\d\d:\d\d UTC.*\d\d:\d\d UTC", re.S))  # created, last used
    confirm(page)
    mine.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("API token ci pipeline revoked.")
    expect(page.locator("#other-api-tokens")).not_to_contain_text("ci pipeline")
    assert api(free, "GET", "/me", token).status_code == 401
    # A session is no API token: the page revokes API tokens only.
    session = next(t for t in free.accounts.list_tokens(owner.id) if t.kind is AdminTokenKind.SESSION)
    answer = page.request.post(
        f"{free.url}{TOKENS}/{session.id}/revoke", form={"csrf_token": csrf_of(page)}, max_redirects=0
    )
    assert answer.status == 404
    maintainer.reload()
    expect(maintainer.locator(".account .who")).to_have_text(MAINTAINER)


def test_a_non_admin_gets_no_account_management(free: UIServer, signed_in) -> None:
    before = emails(free)
    admin_id = free.accounts.find_admin(ADMIN).id
    for email in (OBSERVER, MAINTAINER):
        page = signed_in(free, email)
        page.goto(free.url + "/settings/mdm/windows")
        subnav = page.locator(".subnav")
        expect(subnav.get_by_role("link", name="Admins")).to_have_count(0)
        expect(subnav.get_by_role("link", name="API tokens")).to_be_visible()
        token = session_token(page)
        # The page answers what GET /api/v1/admins answers.
        api_list = api(free, "GET", "/admins", token)
        assert api_list.status_code == 403
        shown = page.goto(free.url + ADMINS)
        assert shown is not None and shown.status == 403
        expect(page.locator("main")).to_contain_text(api_list.json()["error"]["message"])
        expect(page.locator("#admins")).to_have_count(0)
        expect(page.get_by_role("button", name="Create account")).to_have_count(0)
        # Forged POSTs, with the session's real CSRF token: only the role stands in the way.
        page.goto(free.url + TOKENS)
        csrf = csrf_of(page)
        api_create = api(
            free, "POST", "/admins", token, json={"email": "eve@corp.example", "password": PASSWORD}
        )
        assert api_create.status_code == 403
        for path, form in (
            (ADMINS, {"email": "eve@corp.example", "password": PASSWORD, "role": "admin"}),
            (f"{ADMINS}/{admin_id}/delete", {}),
        ):
            answer = page.request.post(free.url + path, form={"csrf_token": csrf, **form}, max_redirects=0)
            assert answer.status == 403, path
            assert str(escape(api_create.json()["error"]["message"])) in answer.text()
    assert emails(free) == before


def test_admin_and_token_forms_need_the_csrf_token(free: UIServer, signed_in) -> None:
    page = signed_in(free)
    page.goto(free.url + ADMINS)
    before = emails(free)
    for path, form in (
        (ADMINS, {"email": "mallory@corp.example", "password": PASSWORD, "role": "admin"}),
        (f"{ADMINS}/{free.accounts.find_admin(OBSERVER).id}/delete", {}),
        (TOKENS, {"name": "forged"}),
    ):
        for token in ({}, {"csrf_token": "0" * 64}):
            answer = page.request.post(free.url + path, form={**form, **token}, max_redirects=0)
            assert answer.status == 403, path
            assert str(escape(CSRF_REFUSED)) in answer.text()
    assert emails(free) == before
    admin = free.accounts.find_admin(ADMIN)
    assert "forged" not in [t.name for t in free.accounts.list_tokens(admin.id, kind=AdminTokenKind.API)]
