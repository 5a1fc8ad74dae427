"""Teams (create, rename, end-user authentication, enrollment secrets shown once, rotated and
revoked), profiles (upload with validation errors inline, per-host status, delete) and the
activity feed (newest first, paged)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui.conftest import UIServer, screenshot
from tests.ui.fleet import POLICY, replace_profile


def test_teams_and_enrollment_secrets(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/teams")
    rows = page.locator("#teams tbody tr")
    expect(rows.first).to_contain_text("No team")
    expect(rows.filter(has_text="Engineering")).to_contain_text("1")
    page.get_by_label("Name").fill("Engineering")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#error-name")).to_contain_text("Engineering")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name").fill("No team")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#error-name")).to_have_text(
        '"No team" is reserved for hosts without a team; choose another name'
    )
    screenshot(page, "teams")
    page.get_by_label("Name").fill("Design")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Design")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Team Design created.")
    # Rename and end-user authentication.
    page.get_by_label("Name").fill("Product design")
    page.get_by_label("End-user authentication").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Product design")).to_be_visible()
    expect(page.get_by_label("End-user authentication")).to_be_checked()
    # A secret is shown once; the list keeps only its record.
    page.get_by_role("button", name="Create secret").click()
    secret = page.locator("#new-secret").input_value()
    assert len(secret) >= 40
    expect(page.locator("#secrets tbody tr")).to_have_count(1)
    expect(page.locator("#secrets")).to_contain_text("Active")
    screenshot(page, "team")
    page.reload()
    expect(page.locator("#new-secret")).to_have_count(0)
    assert secret not in page.content()
    # Rotating revokes it and makes another; revoking that one leaves none active.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile("^Rotate")).click()
    assert page.locator("#new-secret").input_value() not in ("", secret)
    expect(page.locator("#secrets tbody tr")).to_have_count(2)
    expect(page.locator("#secrets tbody tr").nth(1)).to_contain_text("Revoked")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#secrets").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#secrets")).not_to_contain_text("Active")
    # No team's end-user authentication is the server setting (on: WINMDM_END_USER_AUTH).
    page.goto(premium.url + "/teams/0")
    expect(page.get_by_role("heading", name="No team")).to_be_visible()
    expect(page.get_by_label("End-user authentication")).to_be_checked()
    expect(page.get_by_label("Name")).to_have_count(0)
    # Deleting the team.
    page.goto(premium.url + "/teams")
    page.get_by_role("link", name="Product design").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete team").click()
    expect(page.get_by_role("status")).to_contain_text("Team Product design deleted")
    expect(page.locator("#teams")).not_to_contain_text("Product design")


def test_profiles_upload_validation_and_per_host_status(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/profiles")
    expect(page.locator("#profiles")).to_contain_text("Work hours")
    # A file that is not SyncML: the service's message at the SyncML field, the name kept.
    page.get_by_label("Name").fill("Broken")
    page.get_by_label("SyncML file").set_input_files(
        files=[{"name": "broken.xml", "mimeType": "text/xml", "buffer": b"<Replace><CmdID>1</CmdID>"}]
    )
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#error-syncml")).to_contain_text("the SyncML is not valid")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Broken")
    expect(page.get_by_label("SyncML", exact=True)).to_have_attribute("aria-invalid", "true")
    # A path outside ./Device/ and ./User/ is refused with the rule.
    page.get_by_label("SyncML", exact=True).fill(replace_profile("./Vendor/MSFT/Policy/Config/X/Y", "1"))
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#error-syncml")).to_be_visible()
    screenshot(page, "profiles-error")
    # A good file for Engineering.
    page.get_by_role("region", name="Add a profile").get_by_label("Team").select_option(label="Engineering")
    page.get_by_label("Name").fill("")
    page.get_by_label("SyncML", exact=True).fill("")
    page.get_by_label("SyncML file").set_input_files(
        files=[
            {
                "name": "Screen lock.xml",
                "mimeType": "text/xml",
                "buffer": replace_profile(f"{POLICY}/DeviceLock/MaxInactivityTimeDeviceLock", "5").encode(),
            }
        ]
    )
    page.get_by_role("button", name="Add profile").click()
    expect(page.get_by_role("heading", name="Screen lock")).to_be_visible()
    expect(page.get_by_text("Team: Engineering")).to_be_visible()
    expect(page.locator("#profile-hosts")).to_contain_text("DESKTOP-ERIN")
    expect(page.locator("#profile-hosts")).to_contain_text("Pending")
    # One profile's per-host status, with the device's error.
    page.goto(premium.url + "/profiles")
    screenshot(page, "profiles")
    page.get_by_role("link", name="Unsupported setting").click()
    row = page.locator("#profile-hosts tbody tr", has_text="DESKTOP-ALICE")
    expect(row).to_contain_text("Failed")
    expect(row).to_contain_text("404 not found")
    # Delete.
    page.goto(premium.url + "/profiles")
    page.get_by_role("link", name="Screen lock").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete profile").click()
    expect(page.get_by_role("status")).to_have_text("Profile Screen lock deleted.")
    expect(page.locator("#profiles")).not_to_contain_text("Screen lock")


def test_activities_newest_first_and_paged(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/teams")
    page.get_by_label("Name").fill("Activity check")
    page.get_by_role("button", name="Create team").click()
    page.goto(premium.url + "/activities")
    first = page.locator("table.activities tbody tr").first
    expect(first).to_contain_text("Created team Activity check")
    expect(first).to_contain_text("admin@corp.example")
    times = page.locator("table.activities time").evaluate_all("els => els.map(e => e.dateTime)")
    assert times == sorted(times, reverse=True)
    expect(page.locator("table.activities")).to_contain_text("turned on MDM (automatic)")
    expect(page.locator("table.activities")).to_contain_text("turned off MDM")
    screenshot(page, "activities", full_page=False)
    pager = page.locator(".pager")
    total = int(re.match(r"(\d+) total", pager.inner_text()).group(1))
    if total > 50:
        page.get_by_role("link", name="Next").click()
        expect(page).to_have_url(re.compile(r"page=2"))
        expect(page.locator(".pager")).to_contain_text("page 2 of")
    # One host's activity.
    page.goto(f"{premium.url}/activities?host_id={premium.fleet.off}")
    expect(page.locator("table.activities tbody tr").first).to_contain_text("DESKTOP-FRANK")
    expect(page.locator("table.activities tbody tr").first).to_contain_text("turned off MDM")
