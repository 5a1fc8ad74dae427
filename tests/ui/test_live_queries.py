"""Live queries on a host's page in Chromium: a maintainer sends SQL (an empty one is refused at
the field), the host's osquery agent answers it over HTTPS, and the result page shows its rows or
osquery's error; observers read the results but have no form (docs/agent-channel.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from playwright.sync_api import expect

from tests.support.osquery_agent import OsqueryAgent, osquery_tls_context
from tests.ui.conftest import MAINTAINER, OBSERVER, UIServer, screenshot
from winmdm.services.bulk import EnrollmentSecrets

USERS = "SELECT username, uid FROM users ORDER BY uid;"
BROKEN = "SELECT * FROM no_such_table;"


def test_a_live_query_sent_from_the_host_page_shows_the_agents_rows(free: UIServer, signed_in) -> None:
    secret = EnrollmentSecrets(storage=free.storage, clock=lambda: datetime.now(UTC)).create(None).secret
    agent = OsqueryAgent(
        enroll_secret=secret, hardware_uuid="UI-LQ-1", serial="UI-LQ-SN", hostname="UI-LQ-PC"
    )
    agent.answers = {USERS: [{"username": "alice", "uid": "1001"}, {"username": "<b>bob</b>", "uid": "1002"}]}
    client = httpx.Client(base_url=free.url, verify=osquery_tls_context(free.server.dev_ca), timeout=30)
    with client:
        agent.enroll(client)
        with free.storage.transaction() as tx:
            host_id = tx.osquery_nodes.find_by_hardware_uuid("UI-LQ-1").host_id

        page = signed_in(free, MAINTAINER)
        page.goto(f"{free.url}/hosts/{host_id}")
        expect(page.locator("#host-queries")).to_contain_text("No live queries for this host.")
        page.get_by_role("button", name="Run query").click()
        expect(page.locator("#error-sql")).to_contain_text("the query is empty")
        page.get_by_role("textbox", name="Query").fill(USERS)
        page.get_by_role("button", name="Run query").click()
        expect(page.get_by_role("status")).to_contain_text("next distributed read")
        expect(page.locator("#query-state")).to_have_text("Pending")
        expect(page.locator("#query-text")).to_have_text(USERS)
        expect(page.locator("#query-waiting")).to_contain_text("next distributed read")

        agent.distributed_round(client)
        page.reload()
        expect(page.locator("#query-state")).to_have_text("Done")
        expect(page.locator("#query-count")).to_have_text("2 rows.")
        expect(page.locator("#query-rows thead th")).to_have_text(["username", "uid"])
        expect(page.locator("#query-rows tbody tr")).to_have_count(2)
        # The agent's text is shown as text, never as markup.
        expect(page.locator("#query-rows tbody tr").nth(1)).to_contain_text("<b>bob</b>")
        screenshot(page, "live-query")

        page.get_by_role("link", name="UI-LQ-PC").click()
        page.get_by_role("textbox", name="Query").fill(BROKEN)
        page.get_by_role("button", name="Run query").click()
        agent.distributed_round(client)
        page.reload()
        expect(page.locator("#query-error")).to_contain_text("osquery could not run it (status 1)")

    page.get_by_role("link", name="UI-LQ-PC").click()
    rows = page.locator("#host-queries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(BROKEN)
    expect(rows.nth(1)).to_contain_text("Done")
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("2")
    expect(rows.nth(1)).to_contain_text(MAINTAINER)
    page.goto(f"{free.url}/activities?host_id={host_id}")
    expect(page.locator("main")).to_contain_text("Ran a live query on UI-LQ-PC")

    observer = signed_in(free, OBSERVER)
    observer.goto(f"{free.url}/hosts/{host_id}")
    expect(observer.locator("#host-queries tbody tr")).to_have_count(2)
    expect(observer.get_by_role("button", name="Run query")).to_have_count(0)
    observer.locator("#host-queries").get_by_role("link").nth(1).click()
    expect(observer.locator("#query-rows tbody tr")).to_have_count(2)
