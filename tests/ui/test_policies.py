"""The Policies page in Chromium: a maintainer adds a team's policy (errors inline), osquery agents
of that team answer it over HTTPS, and the page lists the counts and the failing host; observers
read but cannot add; delete (docs/policies.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from playwright.sync_api import expect

from tests.support.osquery_agent import OsqueryAgent, osquery_tls_context
from tests.ui.conftest import MAINTAINER, OBSERVER, UIServer, screenshot
from winmdm.services.bulk import EnrollmentSecrets

DISK = "SELECT 1 FROM bitlocker_info WHERE protection_status = 1;"


def test_a_policy_made_on_the_page_lists_the_hosts_that_fail_it(free: UIServer, signed_in) -> None:
    with free.storage.transaction() as tx:
        team = tx.teams.create("Policy laptops", at=datetime.now(UTC))
    secret = EnrollmentSecrets(storage=free.storage, clock=lambda: datetime.now(UTC)).create(team.id).secret

    page = signed_in(free, MAINTAINER)
    page.goto(free.url + "/policies")
    expect(page.locator("#policies")).to_contain_text("No policies.")
    page.get_by_label("Applies to").select_option(label="Policy laptops")
    page.get_by_label("Name").fill("Disk encrypted")
    page.get_by_role("button", name="Add policy").click()
    expect(page.locator("#error-sql")).to_contain_text("osquery SQL query")
    expect(page.get_by_label("Name")).to_have_value("Disk encrypted")
    page.get_by_label("Query").fill(DISK)
    page.get_by_role("button", name="Add policy").click()
    expect(page.get_by_role("heading", name="Disk encrypted")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Policy Disk encrypted added.")
    expect(page.locator("#failing-hosts")).to_contain_text("No host fails this policy.")

    agents = [
        OsqueryAgent(
            enroll_secret=secret, hardware_uuid=f"UI-{n}", serial=f"UI-SN-{n}", hostname=f"UI-PC-{n}"
        )
        for n in (1, 2)
    ]
    agents[0].answers = {DISK: [{"1": "1"}]}
    agents[1].answers = {DISK: []}  # the table is there; BitLocker is off
    with httpx.Client(
        base_url=free.url, verify=osquery_tls_context(free.server.dev_ca), timeout=30
    ) as client:
        for agent in agents:
            agent.enroll(client)
            agent.distributed_round(client)

    page.reload()
    expect(page.locator("#failing-hosts tbody tr")).to_have_count(1)
    expect(page.locator("#failing-hosts")).to_contain_text("UI-PC-2")
    expect(page.get_by_text("1 passing · 1 failing")).to_be_visible()
    screenshot(page, "policy")
    page.get_by_role("link", name="UI-PC-2").click()  # the host's page shows its agent and answer
    expect(page.locator("#osquery-status")).to_contain_text("osquery 5.12.1")
    expect(page.locator("#host-policies tbody tr").filter(has_text="Disk encrypted")).to_contain_text("Fails")
    page.goto(free.url + "/policies")
    row = page.locator("#policies tbody tr").filter(has_text="Disk encrypted")
    expect(row).to_contain_text("Policy laptops")
    expect(row.locator("td").nth(2)).to_have_text("1")
    expect(row.locator("td").nth(3)).to_have_text("1")
    # The same name again in the same team: the service's text, at the form.
    page.get_by_label("Applies to").select_option(label="Policy laptops")
    page.get_by_label("Name").fill("Disk encrypted")
    page.get_by_label("Query").fill(DISK)
    page.get_by_role("button", name="Add policy").click()
    expect(page.locator(".form-error")).to_contain_text("already have a policy named 'Disk encrypted'")

    observer = signed_in(free, OBSERVER)
    observer.goto(free.url + "/policies")
    expect(observer.locator("#policies")).to_contain_text("Disk encrypted")
    expect(observer.get_by_role("button", name="Add policy")).to_have_count(0)

    page.get_by_role("link", name="Disk encrypted").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete policy").click()
    expect(page.get_by_role("status")).to_have_text("Policy Disk encrypted deleted.")
    expect(page.locator("#policies")).to_contain_text("No policies.")
