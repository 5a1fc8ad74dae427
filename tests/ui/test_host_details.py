"""A host's page: MDM status with its tooltip, enrollment path, both IdP usernames, team
(transfer), profiles with the device's errors, the agent package, recent activity, and the
actions (refetch, reboot, wipe with the host's name typed, unenroll, delete)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.device import WindowsDevice
from tests.ui.conftest import TENANT, UIServer, screenshot
from tests.ui.fleet import POLICY

MANUAL_TOOLTIP = "MDM was turned on manually. End users can turn MDM off."


def fact(page: Page, term: str):
    return page.locator(f"dl.facts dt:text-is('{term}') + dd")


def test_a_manual_host_shows_everything_an_admin_checks(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{premium.fleet.manual}")
    expect(page.get_by_role("heading", name="DESKTOP-ALICE")).to_be_visible()
    status = page.locator(".header-row .status")
    expect(status).to_contain_text("On (manual)")
    status.hover()
    expect(status.get_by_role("tooltip")).to_have_text(MANUAL_TOOLTIP)
    expect(page.locator("#mdm-status-tooltip")).to_have_text(MANUAL_TOOLTIP)
    expect(page.locator("#enrollment-path")).to_have_text("Settings: work account (Entra)")
    # Both usernames: the enrollment's (Entra UPN) and the end-user authentication's (the IdP).
    expect(page.locator("#idp-username")).to_contain_text("alice@corp.example")
    expect(page.locator("#end-user-username")).to_contain_text("bob@corp.example")
    expect(fact(page, "Serial number")).to_have_text("SN-ALICE-0001")
    expect(page.locator("#host-team")).to_have_text("No team")
    profiles = page.locator("#host-profiles tbody tr")
    expect(profiles.filter(has_text="Work hours")).to_contain_text("Verified")
    failed = profiles.filter(has_text="Unsupported setting")
    expect(failed).to_contain_text("Failed")
    expect(failed).to_contain_text(f"{POLICY}/Nope/Setting: 404 not found")
    expect(page.locator("#agent-status")).to_contain_text("Installed")
    activity = page.locator("table.activities")
    expect(activity).to_contain_text("DESKTOP-ALICE (SN-ALICE-0001) turned on MDM (manual)")
    expect(activity).to_contain_text("was added to winmdm")
    screenshot(page, "host")


def test_an_automatic_host_and_a_pending_one(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{premium.fleet.automatic}")
    expect(page.locator("#mdm-status")).to_contain_text("On (automatic)")
    expect(page.locator("#mdm-status-tooltip")).to_have_text(
        "MDM was turned on automatically. End users can't turn MDM off."
    )
    expect(page.locator("#enrollment-path")).to_have_text("Entra join in OOBE / Autopilot")
    expect(page.locator("#end-user-username")).to_contain_text("—")
    page.goto(f"{premium.url}/hosts/{premium.fleet.pending}")
    expect(page.locator("#mdm-status")).to_contain_text("Pending")
    page.goto(f"{premium.url}/hosts/999999")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("no host with id 999999")


def test_transfer_to_a_team_and_back(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{premium.fleet.automatic}")
    page.get_by_label("Transfer to").select_option(label="Engineering")
    page.get_by_role("button", name="Transfer").click()
    expect(page.get_by_role("status")).to_have_text("The host was transferred.")
    expect(page.locator("#host-team")).to_have_text("Engineering")
    expect(page.locator("table.activities")).to_contain_text(
        "Moved AUTOPILOT-CAROL (SN-CAROL-0003) from No team to Engineering"
    )
    page.get_by_label("Transfer to").select_option(label="No team")
    page.get_by_role("button", name="Transfer").click()
    expect(page.locator("#host-team")).to_have_text("No team")


def test_refetch_reboot_and_unenroll_are_queued(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{premium.fleet.pending}")
    page.get_by_role("button", name="Refetch").click()
    expect(page.get_by_role("status")).to_have_text("Refetch queued for the host's next check-in.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reboot").click()
    expect(page.get_by_role("status")).to_have_text("Reboot queued for the host's next check-in.")
    # Dismissing the confirmation sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Unenroll").click()
    expect(page.get_by_role("status")).to_have_text("Reboot queued for the host's next check-in.")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Unenroll").click()
    expect(page.get_by_role("status")).to_have_text("Unenroll queued for the host's next check-in.")
    # Commands are fleet activities (they may name many hosts): the feed shows them, newest first.
    page.goto(premium.url + "/activities")
    activity = page.locator("table.activities tbody tr")
    expect(activity.nth(0)).to_contain_text("Sent an unenroll to 1 host")
    expect(activity.nth(1)).to_contain_text("Sent a reboot to 1 host")
    expect(activity.nth(2)).to_contain_text("Sent a refetch to 1 host")
    activity = page.locator("table.activities")
    expect(activity).to_contain_text("Sent a refetch to 1 host")
    expect(activity).to_contain_text("Sent a reboot to 1 host")
    expect(activity).to_contain_text("Sent an unenroll to 1 host")


def test_wipe_needs_the_host_name_typed(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{premium.fleet.automatic}")
    button = page.get_by_role("button", name="Wipe")
    expect(button).to_be_disabled()
    confirm = page.get_by_label("Type AUTOPILOT-CAROL to confirm")
    confirm.fill("AUTOPILOT")
    expect(button).to_be_disabled()
    # The server checks too: a wipe sent with the wrong name is refused next to the field.
    page.evaluate("document.getElementById('wipe-button').disabled = false")
    button.click()
    expect(page.locator("#error-confirm")).to_have_text(
        "Type the host's name, AUTOPILOT-CAROL, exactly to confirm the wipe."
    )
    page.get_by_label("Type AUTOPILOT-CAROL to confirm").fill("AUTOPILOT-CAROL")
    expect(page.get_by_role("button", name="Wipe")).to_be_enabled()
    page.get_by_role("button", name="Wipe").click()
    expect(page.get_by_role("status")).to_have_text("Wipe queued for the host's next check-in.")
    page.goto(premium.url + "/activities")
    expect(page.locator("table.activities tbody tr").first).to_contain_text("Sent a wipe to 1 host")


def test_deleting_a_host(premium: UIServer, signed_in, entra) -> None:
    device = WindowsDevice(device_name="DESKTOP-TEMP", not_in_oobe=True, ux_initiated=True)
    with premium.server.client() as client:
        device.enroll(
            client,
            premium.server.discovery_url,
            email="temp@corp.example",
            token=entra.token(tenant_id=TENANT, audience=premium.url, upn="temp@corp.example"),
        )
    with premium.storage.transaction() as tx:
        host_id = tx.enrollments.find_active_by_device_id(device.device_id).host_id
    page = signed_in(premium)
    page.goto(f"{premium.url}/hosts/{host_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete host").click()
    expect(page).to_have_url(premium.url + "/hosts")
    expect(page.get_by_role("status")).to_have_text("DESKTOP-TEMP was deleted.")
    expect(page.locator("#hosts")).not_to_contain_text("DESKTOP-TEMP")
