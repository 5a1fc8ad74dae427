"""Roles and CSRF: an observer sees no edit controls and the server refuses its forged POSTs with
the API's 403 message; a maintainer acts on hosts but not on settings; a POST without the
session's CSRF token is refused, whoever sends it."""

from __future__ import annotations

from markupsafe import escape
from playwright.sync_api import Page, expect

from tests.ui.conftest import MAINTAINER, OBSERVER, UIServer, api, csrf_of, screenshot, session_token
from winmdm.web.ui.session import CSRF_REFUSED


def forged(page: Page, ui: UIServer, path: str, form: dict[str, str]):
    """A POST as this browser (its cookie), with the session's real CSRF token: only the role
    stands in the way."""
    return page.request.post(ui.url + path, form={"csrf_token": csrf_of(page), **form}, max_redirects=0)


def test_an_observer_sees_no_edit_controls(premium: UIServer, signed_in) -> None:
    page = signed_in(premium, OBSERVER)
    page.goto(f"{premium.url}/hosts/{premium.fleet.manual}")
    expect(page.locator(".account .role")).to_have_text("Role: observer")
    expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    for name in ("Transfer", "Refetch", "Reboot", "Unenroll", "Wipe", "Delete host", "Run query"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_label("Transfer to")).to_have_count(0)
    # It still reads everything: status, tooltip, profiles.
    expect(page.locator("#mdm-status")).to_contain_text("On (manual)")
    expect(page.locator("#host-profiles")).to_contain_text("Unsupported setting")
    screenshot(page, "host-observer")
    page.goto(premium.url + "/settings/mdm/windows")
    expect(page.locator("#windows-mdm-readonly")).to_contain_text("End user experience")
    expect(page.get_by_role("switch")).to_have_count(0)
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    page.goto(premium.url + "/settings/agent")
    expect(page.locator("form[action='/settings/agent']")).to_have_count(0)
    page.goto(premium.url + "/teams")
    expect(page.get_by_role("button", name="Create team")).to_have_count(0)
    page.goto(f"{premium.url}/teams/{premium.fleet.team_id}")
    expect(page.get_by_role("button")).to_have_text(["Sign out"])
    page.goto(premium.url + "/profiles")
    expect(page.get_by_role("button", name="Add profile")).to_have_count(0)


def test_an_observers_forged_posts_are_refused_with_the_apis_message(premium: UIServer, signed_in) -> None:
    page = signed_in(premium, OBSERVER)
    page.goto(premium.url + "/")
    token = session_token(page)
    api_settings = api(
        premium, "PATCH", "/config", token, json={"mdm": {"windows_enabled_and_configured": False}}
    )
    assert api_settings.status_code == 403
    answer = forged(page, premium, "/settings/mdm/windows", {"windows_enabled_and_configured": ""})
    assert answer.status == 403
    assert str(escape(api_settings.json()["error"]["message"])) in answer.text()
    api_wipe = api(
        premium, "POST", f"/hosts/{premium.fleet.automatic}/wipe", token, json={"protected": False}
    )
    assert api_wipe.status_code == 403
    answer = forged(page, premium, f"/hosts/{premium.fleet.automatic}/wipe", {"confirm": "AUTOPILOT-CAROL"})
    assert answer.status == 403
    assert str(escape(api_wipe.json()["error"]["message"])) in answer.text()
    for path in (
        "/teams",
        f"/hosts/{premium.fleet.manual}/transfer",
        f"/hosts/{premium.fleet.manual}/delete",
        f"/hosts/{premium.fleet.manual}/queries",
        f"/teams/{premium.fleet.team_id}/secrets",
        "/profiles",
        "/settings/agent",
    ):
        assert forged(page, premium, path, {"name": "x", "team_id": "0"}).status == 403, path
    # Nothing changed.
    config = api(premium, "GET", "/config", token).json()["mdm"]
    assert config["windows_enabled_and_configured"] is True
    page.goto(f"{premium.url}/hosts/{premium.fleet.manual}")
    expect(page.locator("#host-team")).to_have_text("No team")
    expect(page.locator("#host-queries")).to_contain_text("No live queries for this host.")


def test_a_maintainer_acts_on_hosts_but_not_on_settings(premium: UIServer, signed_in) -> None:
    page = signed_in(premium, MAINTAINER)
    page.goto(f"{premium.url}/hosts/{premium.fleet.manual}")
    expect(page.get_by_role("button", name="Refetch")).to_be_visible()
    page.goto(premium.url + "/settings/mdm/windows")
    expect(page.get_by_role("switch")).to_have_count(0)
    api_answer = api(premium, "POST", "/teams", session_token(page), json={"name": "Sneaky"})
    answer = forged(page, premium, "/teams", {"name": "Sneaky"})
    assert answer.status == 403 == api_answer.status_code
    assert str(escape(api_answer.json()["error"]["message"])) in answer.text()


def test_a_post_without_the_csrf_token_is_refused(premium: UIServer, signed_in) -> None:
    page = signed_in(premium)
    page.goto(premium.url + "/teams")
    for form in ({"name": "No token"}, {"name": "Wrong token", "csrf_token": "0" * 64}):
        answer = page.request.post(premium.url + "/teams", form=form, max_redirects=0)
        assert answer.status == 403
        assert str(escape(CSRF_REFUSED)) in answer.text()
    # A JSON body (another site's fetch) is no form at all.
    answer = page.request.post(premium.url + "/teams", data={"name": "JSON"}, max_redirects=0)
    assert answer.status == 403
    page.goto(premium.url + "/teams")
    expect(page.locator("#teams")).not_to_contain_text("token")
    expect(page.locator("#teams")).not_to_contain_text("JSON")
