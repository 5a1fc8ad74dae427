"""The end-user enrollment page: no sign-in, the steps in Settings > Accounts > Access work or
school, the deep-link button and the server address to type."""

from __future__ import annotations

from urllib.parse import parse_qs

from playwright.sync_api import expect

from tests.ui.conftest import UIServer, screenshot


def test_the_enrollment_page_for_end_users(free: UIServer, anonymous) -> None:
    anonymous.goto(free.url + "/enroll")
    expect(anonymous).to_have_url(free.url + "/enroll")
    expect(anonymous.get_by_role("heading", name="Turn on device management")).to_be_visible()
    steps = anonymous.locator("ol.steps li").all_inner_texts()
    assert steps[0] == "On the Windows PC, open Settings > Accounts > Access work or school."
    assert any("Enroll only in device management" in step for step in steps)
    discovery = free.url + "/EnrollmentServer/Discovery.svc"
    expect(anonymous.locator("#server-address")).to_have_text(discovery)
    link = anonymous.get_by_role("link", name="Open Settings to enroll this PC").get_attribute("href")
    assert link.startswith("ms-device-enrollment:?")
    params = parse_qs(link.split("?", 1)[1])
    assert params == {"mode": ["mdm"], "servername": [discovery]}
    screenshot(anonymous, "enroll")


def test_with_entra_the_page_says_connect(premium: UIServer, anonymous) -> None:
    anonymous.goto(premium.url + "/enroll")
    expect(anonymous.locator("ol.steps")).to_contain_text(
        'Select "Connect" and enter your work email address.'
    )
    expect(anonymous.get_by_role("link", name="Open Settings to enroll this PC")).to_be_visible()
