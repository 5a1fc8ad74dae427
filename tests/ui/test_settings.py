"""Settings > MDM > Windows, the seed's "New UI" checklist: Premium shows the End user experience
section, Automatic is selected when Windows MDM is turned on, Manual hides the migration
checkbox, Free shows only the toggle; the server's errors appear next to their field, with the
API's wording. Also the Entra connection, the sign-in IdP, the check-in schedule and the agent
package."""

from __future__ import annotations

import re

from markupsafe import escape
from playwright.sync_api import Page, expect

from tests.ui.conftest import TENANT, UIServer, api, csrf_of, screenshot, session_token
from winmdm.services.settings import (
    MESSAGE_MANUAL_WHILE_MIGRATION,
    MESSAGE_MIGRATION_WHILE_MANUAL,
    MESSAGE_PREMIUM_REQUIRED,
)

PATH = "/settings/mdm/windows"


def save(page: Page) -> None:
    page.get_by_role("button", name="Save").click()


def set_automatic(page: Page, ui: UIServer, *, migration: bool) -> None:
    page.goto(ui.url + PATH)
    page.get_by_role("switch", name="Windows MDM").check()
    page.get_by_label("Automatic", exact=True).check()
    page.get_by_label("Automatically migrate hosts connected to another MDM solution").set_checked(migration)
    save(page)
    expect(page.get_by_role("status")).to_have_text("Windows MDM settings saved.")


def test_premium_end_user_experience(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + PATH)
    expect(page.locator("#license-tier")).to_have_text("Premium")
    toggle = page.get_by_role("switch", name="Windows MDM")
    section = page.get_by_role("group", name="End user experience")
    automatic = page.get_by_label("Automatic", exact=True)
    manual = page.get_by_label("Manual", exact=True)
    migration = page.get_by_label("Automatically migrate hosts connected to another MDM solution")
    # A fresh server: Windows MDM on, Automatic.
    expect(toggle).to_be_checked()
    expect(section).to_be_visible()
    expect(automatic).to_be_checked()
    expect(migration).to_be_visible()
    screenshot(page, "settings-windows")

    # Turned off, then on again: Automatic is selected by default.
    toggle.uncheck()
    expect(section).to_be_hidden()
    save(page)
    expect(page.get_by_role("status")).to_have_text("Windows MDM settings saved.")
    expect(toggle).not_to_be_checked()
    expect(section).to_be_hidden()
    toggle.check()
    expect(section).to_be_visible()
    expect(automatic).to_be_checked()
    expect(manual).not_to_be_checked()

    # Manual: the migration checkbox disappears; back to Automatic, it returns as it was.
    migration.check()
    manual.check()
    expect(migration).to_be_hidden()
    automatic.check()
    expect(migration).to_be_visible()
    expect(migration).to_be_checked()
    manual.check()
    save(page)
    expect(page.get_by_role("status")).to_have_text("Windows MDM settings saved.")
    expect(toggle).to_be_checked()
    expect(manual).to_be_checked()
    expect(migration).to_be_hidden()
    config = api(premium, "GET", "/config", session_token(page)).json()["mdm"]
    assert config["windows_enabled_and_configured"] is True
    assert config["enable_turn_on_windows_mdm_manually"] is True
    assert config["windows_migration_enabled"] is False
    screenshot(page, "settings-windows-manual")
    set_automatic(page, premium, migration=False)


def test_manual_while_migration_is_refused_next_to_the_field(premium: UIServer, signed_in) -> None:
    """Without JavaScript both stay visible: Manual with the migration box checked is sent, and
    the service's message (the API's, word for word) shows in the End user experience group."""
    page = signed_in(premium)
    set_automatic(page, premium, migration=True)
    plain = signed_in(premium, java_script_enabled=False)
    plain.goto(premium.url + PATH)
    migration = plain.get_by_label("Automatically migrate hosts connected to another MDM solution")
    expect(migration).to_be_checked()
    plain.get_by_label("Manual", exact=True).check()
    expect(migration).to_be_visible()
    save(plain)
    error = plain.locator("#end-user-experience .field-error")
    expect(error).to_have_text(MESSAGE_MANUAL_WHILE_MIGRATION)
    expect(plain.get_by_role("group", name="End user experience")).to_have_attribute(
        "aria-describedby", "error-mdm-enable_turn_on_windows_mdm_manually"
    )
    # What was sent stays on the page to be corrected; nothing was saved.
    expect(plain.get_by_label("Manual", exact=True)).to_be_checked()
    screenshot(plain, "settings-windows-error")
    answer = api(
        premium,
        "PATCH",
        "/config",
        session_token(plain),
        json={"mdm": {"enable_turn_on_windows_mdm_manually": True}},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == MESSAGE_MANUAL_WHILE_MIGRATION
    config = api(premium, "GET", "/config", session_token(plain)).json()["mdm"]
    assert config["windows_migration_enabled"] is True
    assert config["enable_turn_on_windows_mdm_manually"] is False
    # The box stays in reach next to the error: unchecked, Manual is saved.
    migration = plain.get_by_label("Automatically migrate hosts connected to another MDM solution")
    expect(migration).to_be_visible()
    expect(migration).to_be_checked()
    migration.uncheck()
    save(plain)
    expect(plain.get_by_role("status")).to_have_text("Windows MDM settings saved.")
    expect(plain.get_by_label("Manual", exact=True)).to_be_checked()
    # The other direction: migration sent while Manual is on, refused at the migration box.
    answer = plain.request.post(
        premium.url + PATH,
        form={
            "csrf_token": csrf_of(plain),
            "windows_enabled_and_configured": "on",
            "windows_migration_enabled": "on",
        },
    )
    assert answer.status == 422
    assert (
        f'id="error-mdm-windows_migration_enabled" role="alert">{escape(MESSAGE_MIGRATION_WHILE_MANUAL)}<'
        in answer.text()
    )
    set_automatic(page, premium, migration=False)


def test_entra_identity_provider_and_schedule(premium: UIServer, signed_in) -> None:
    page = signed_in(premium, permissions=["clipboard-read", "clipboard-write"])
    page.goto(premium.url + PATH)
    expect(page.locator("#entra-status")).to_contain_text(f"Connected. Tenants allowed to enroll: {TENANT}")
    discovery = page.get_by_label("MDM discovery URL")
    terms = page.get_by_label("MDM terms of use URL")
    expect(discovery).to_have_value(premium.url + "/EnrollmentServer/Discovery.svc")
    expect(terms).to_have_value(premium.url + "/EnrollmentServer/TermsOfUse")
    copy = page.locator("button[data-copy=terms-url]")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == premium.url + "/EnrollmentServer/TermsOfUse"
    page.locator("button[data-copy=discovery-url]").click()
    assert page.evaluate("navigator.clipboard.readText()") == premium.url + "/EnrollmentServer/Discovery.svc"
    expect(page.locator("#idp-status")).to_contain_text("Configured: http://127.0.0.1")
    expect(page.get_by_label("Sign-in page redirect URI")).to_have_value(
        premium.url + "/EnrollmentServer/Authenticate/callback"
    )
    expect(page.locator("#poll-schedule")).to_have_text(
        "After enrolling, hosts check in every 3 minutes 5 times, then every 15 minutes 8 times, "
        "then every 480 minutes, and at each sign-in."
    )


def test_free_shows_only_the_toggle(free: UIServer, signed_in) -> None:
    page = signed_in(free)
    page.goto(free.url + PATH)
    expect(page.locator("#license-tier")).to_have_text("Free")
    expect(page.get_by_role("switch", name="Windows MDM")).to_be_visible()
    expect(page.get_by_text("End user experience", exact=True)).to_have_count(0)
    expect(page.get_by_label("Manual", exact=True)).to_have_count(0)
    expect(page.get_by_label("Automatically migrate hosts connected to another MDM solution")).to_have_count(
        0
    )
    expect(page.locator("#premium-note")).to_contain_text("Premium adds the end user experience")
    expect(page.locator("#entra-status")).to_contain_text("Not connected. Set WINMDM_ENTRA_TENANT_IDS")
    expect(page.locator("#idp-status")).to_contain_text("Not configured. Set WINMDM_OIDC_ISSUER")
    screenshot(page, "settings-windows-free")
    # A Premium setting sent anyway (the form never offers it) gets the API's premium_required text.
    answer = page.request.post(
        free.url + PATH,
        form={
            "csrf_token": page.locator("input[name=csrf_token]").first.get_attribute("value"),
            "windows_enabled_and_configured": "on",
            "end_user_experience": "manual",
        },
    )
    assert answer.status == 422
    message = MESSAGE_PREMIUM_REQUIRED.format(key="enable_turn_on_windows_mdm_manually")
    assert str(escape(message)) in answer.text()
    api_answer = api(
        free,
        "PATCH",
        "/config",
        session_token(page),
        json={"mdm": {"enable_turn_on_windows_mdm_manually": True}},
    )
    assert api_answer.json()["error"] == {
        "code": "premium_required",
        "message": message,
        "field": "mdm.enable_turn_on_windows_mdm_manually",
    }
    # The toggle itself works on Free.
    page.get_by_role("switch", name="Windows MDM").uncheck()
    save(page)
    expect(page.get_by_role("switch", name="Windows MDM")).not_to_be_checked()
    page.get_by_role("switch", name="Windows MDM").check()
    save(page)
    expect(page.get_by_role("switch", name="Windows MDM")).to_be_checked()


def test_agent_package(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/settings/agent")
    current = page.locator("#agent-package")
    expect(current).to_contain_text("{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}")
    expect(current).to_contain_text("Uploaded to winmdm")
    screenshot(page, "settings-agent")
    url_form = page.locator("form", has=page.locator("input[name=source][value=url]"))
    url_form.get_by_label("Download URL").fill("https://downloads.corp.example/agent.msi")
    url_form.get_by_label("SHA-256").fill("not-a-hash")
    url_form.get_by_label("Product code").fill("{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}")
    url_form.get_by_label("Version").fill("1.2.4")
    url_form.get_by_role("button", name="Save").click()
    error = page.locator("#error-url-sha256")
    expect(error).to_contain_text("is not a SHA-256: it must be 64 hexadecimal characters")
    expect(page.locator("#url-url")).to_have_value("https://downloads.corp.example/agent.msi")
    # An upload that is not an MSI is refused at the file field.
    upload = page.locator("form", has=page.locator("input[name=source][value=upload]"))
    upload.get_by_label("MSI file").set_input_files(
        files=[{"name": "agent.msi", "mimeType": "application/octet-stream", "buffer": b"MZ not an msi"}]
    )
    upload.get_by_label("Product code").fill("{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}")
    upload.get_by_label("Version").fill("1.2.4")
    upload.get_by_role("button", name="Upload").click()
    expect(page.locator("#error-upload-content")).to_contain_text("the upload is not an MSI")
    # A real one replaces the package.
    msi = bytes.fromhex("D0CF11E0A1B11AE1") + b"agent 1.2.4" * 100
    upload = page.locator("form", has=page.locator("input[name=source][value=upload]"))
    upload.get_by_label("MSI file").set_input_files(
        files=[{"name": "agent.msi", "mimeType": "application/octet-stream", "buffer": msi}]
    )
    upload.get_by_label("Product code").fill("{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}")
    upload.get_by_label("Version").fill("1.2.4")
    upload.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Agent package saved")
    expect(page.locator("#agent-package")).to_contain_text("1.2.4")
    expect(page.locator("#agent-package")).to_contain_text(f"Uploaded to winmdm ({len(msi)} bytes)")
    expect(page.locator("#agent-package")).to_contain_text(re.compile(r"[0-9a-f]{64}"))
