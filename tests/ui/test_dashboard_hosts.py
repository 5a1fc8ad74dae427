"""The dashboard's MDM status counts and chart, the hosts list with its filters, and the "On
(manual)" tooltip wherever a status is shown (seed: "added to the list of hosts w/ On (manual)
on the dashboard and Host page")."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.ui.conftest import UIServer, screenshot
from winmdm.domain.fleet import HostMDMStatus

MANUAL_TOOLTIP = "MDM was turned on manually. End users can turn MDM off."


def counts(page: Page) -> dict[str, int]:
    return {
        status.value: int(page.locator(f"#count-{status.value} .count").inner_text())
        for status in HostMDMStatus
    }


def host_names(page: Page) -> list[str]:
    return page.locator("#hosts tbody tr td:first-child a").all_inner_texts()


def expect_hosts(page: Page, names: list[str], timeout: float = 5.0) -> None:
    """The list shows exactly these hosts (in any order), once the page has settled."""
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        try:
            page.wait_for_load_state()
            got = sorted(host_names(page))
        except PlaywrightError:  # the page navigated while it was read
            continue
        if got == sorted(names):
            return
        time.sleep(0.1)
    assert got == sorted(names)


def test_dashboard_counts_each_status_and_links_to_its_hosts(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/")
    expect(page.get_by_role("heading", name="MDM status of Windows hosts")).to_be_visible()
    assert counts(page) == {"on_automatic": 1, "on_manual": 2, "off": 1, "pending": 1}
    # The chart says the same (its accessible title, and one bar per status).
    expect(page.locator("svg.chart title")).to_have_text(
        "MDM status: On (automatic) 1, On (manual) 2, Off 1, Pending 1"
    )
    assert page.locator("svg.chart rect.bar").count() == 4
    # The tooltip of On (manual), on hover.
    card = page.locator("#count-on_manual")
    card.hover()
    expect(card.get_by_role("tooltip")).to_be_visible()
    expect(card.get_by_role("tooltip")).to_have_text(MANUAL_TOOLTIP)
    screenshot(page, "dashboard")
    card.click()
    expect(page).to_have_url(premium.url + "/hosts?mdm_status=on_manual")
    expect_hosts(page, ["DESKTOP-ALICE", "DESKTOP-ERIN"])
    expect(page.get_by_label("MDM status")).to_have_value("on_manual")
    for status, names in (
        ("on_automatic", ["AUTOPILOT-CAROL"]),
        ("pending", ["DESKTOP-DAVE"]),
        ("off", ["DESKTOP-FRANK"]),
    ):
        page.goto(premium.url + "/")
        page.locator(f"svg.chart a[aria-label^='{HostMDMStatus(status).label}:']").click()
        expect(page).to_have_url(f"{premium.url}/hosts?mdm_status={status}")
        expect_hosts(page, names)


def test_the_dashboard_filters_by_team(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/")
    page.get_by_label("Team", exact=True).select_option(label="Engineering")
    expect(page).to_have_url(f"{premium.url}/?team_id={premium.fleet.team_id}")
    assert counts(page) == {"on_automatic": 0, "on_manual": 1, "off": 0, "pending": 0}
    page.locator("#count-on_manual").click()
    expect(page).to_have_url(f"{premium.url}/hosts?mdm_status=on_manual&team_id={premium.fleet.team_id}")
    expect_hosts(page, ["DESKTOP-ERIN"])
    page.goto(premium.url + "/?team_id=0")
    assert counts(page) == {"on_automatic": 1, "on_manual": 1, "off": 1, "pending": 1}


def test_hosts_list_filters_columns_and_tooltip(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/hosts")
    headers = page.locator("#hosts thead th").all_inner_texts()
    assert [h.strip().lower() for h in headers] == [
        "name",
        "serial",
        "os",
        "team",
        "mdm status",
        "idp username",
        "last check-in",
    ]
    expect(page.locator("#hosts tbody tr")).to_have_count(5)
    expect(page.locator(".pager")).to_contain_text("5 total · page 1 of 1")
    # The MDM status filter offers On (manual); choosing it sends the form.
    page.get_by_label("MDM status").select_option(label="On (manual)")
    expect(page).to_have_url(re.compile(r"mdm_status=on_manual"))
    expect_hosts(page, ["DESKTOP-ALICE", "DESKTOP-ERIN"])
    alice = page.locator("tr", has_text="DESKTOP-ALICE")
    expect(alice.locator("td").nth(1)).to_have_text("SN-ALICE-0001")
    expect(alice.locator("td").nth(3)).to_have_text("No team")
    expect(alice.locator("td").nth(5)).to_have_text("alice@corp.example")
    expect(page.locator("tr", has_text="DESKTOP-ERIN").locator("td").nth(3)).to_have_text("Engineering")
    status = alice.locator(".status")
    expect(status).to_contain_text("On (manual)")
    status.hover()
    expect(status.get_by_role("tooltip")).to_be_visible()
    expect(status.get_by_role("tooltip")).to_have_text(MANUAL_TOOLTIP)
    screenshot(page, "hosts")
    # Keyboard users get the tooltip too.
    page.mouse.move(0, 0)
    status.focus()
    expect(status.get_by_role("tooltip")).to_be_visible()
    # Search: IdP username, serial, name.
    page.goto(premium.url + "/hosts")
    page.get_by_label("Search").fill("carol@corp")
    page.get_by_role("button", name="Search").click()
    expect_hosts(page, ["AUTOPILOT-CAROL"])
    page.get_by_label("Search").fill("sn-frank")
    page.get_by_role("button", name="Search").click()
    expect_hosts(page, ["DESKTOP-FRANK"])
    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("#hosts tbody tr")).to_have_count(5)
    # Team filter, and a page past the end.
    page.get_by_label("Team", exact=True).select_option(label="Engineering")
    expect_hosts(page, ["DESKTOP-ERIN"])
    page.goto(premium.url + "/hosts?page=2")
    expect(page.locator("#hosts")).to_contain_text("No hosts match these filters.")
    expect(page.get_by_role("link", name="Previous")).to_have_attribute("href", "/hosts?page=1")
    page.goto(premium.url + "/hosts?mdm_status=sideways")
    expect(page.get_by_role("alert")).to_contain_text("unknown MDM status 'sideways'")
