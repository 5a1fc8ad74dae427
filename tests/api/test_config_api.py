"""Settings and tiers through the API: the seed's "GitOps and API" checklist (issue 6, part 3).

The error texts are the settings service's constants, so the CLI, GitOps and the UI show the
very same words (their own tests compare against the same constants)."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import API, DISCOVERY
from tests.support.device import EnrollmentRefused, WindowsDevice
from winmdm.domain.admin import Role
from winmdm.services import settings as rules


def _mdm(server, role: Role = Role.ADMIN, **changes):
    return server.patch("/config", role, json={"mdm": changes})


def test_defaults_free_tier_and_server_facts(server):
    config = server.get("/config", Role.OBSERVER).json()
    assert config["mdm"] == {
        "windows_enabled_and_configured": True,
        "windows_migration_enabled": False,
        "enable_turn_on_windows_mdm_manually": False,  # Automatic by default
        "end_user_authentication": False,
    }
    assert config["license"]["tier"] == "free" and config["license"]["warning"] is None
    assert config["server"]["discovery_url"] == DISCOVERY
    assert config["server"]["terms_of_use_url"].startswith("https://mdm.corp.example/")
    assert config["server"]["entra_tenant_ids"]


def test_free_refuses_premium_settings_naming_premium_and_the_license(server):
    answer = _mdm(server, enable_turn_on_windows_mdm_manually=True)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "premium_required"
    assert error["field"] == "mdm.enable_turn_on_windows_mdm_manually"
    assert error["message"] == rules.MESSAGE_PREMIUM_REQUIRED.format(key=rules.MANUAL)
    assert "Premium" in error["message"] and "WINMDM_LICENSE_KEY" in error["message"]
    migration = _mdm(server, windows_migration_enabled=True).json()["error"]
    assert migration["message"] == rules.MESSAGE_PREMIUM_REQUIRED.format(key=rules.MIGRATION)
    assert server.get("/config").json()["mdm"]["enable_turn_on_windows_mdm_manually"] is False


def test_premium_manual_and_migration_exclude_each_other(make_server):
    server = make_server(premium=True)
    assert server.get("/config").json()["license"]["tier"] == "premium"
    on = _mdm(server, enable_turn_on_windows_mdm_manually=True)
    assert on.status_code == 200 and on.json()["mdm"]["enable_turn_on_windows_mdm_manually"] is True

    migration = _mdm(server, windows_migration_enabled=True)
    assert migration.status_code == 422
    assert migration.json()["error"]["message"] == rules.MESSAGE_MIGRATION_WHILE_MANUAL
    assert migration.json()["error"]["field"] == "mdm.windows_migration_enabled"

    assert _mdm(server, enable_turn_on_windows_mdm_manually=False).status_code == 200
    assert _mdm(server, windows_migration_enabled=True).status_code == 200
    manual = _mdm(server, enable_turn_on_windows_mdm_manually=True)
    assert manual.status_code == 422
    assert manual.json()["error"]["message"] == rules.MESSAGE_MANUAL_WHILE_MIGRATION
    both = _mdm(server, windows_migration_enabled=True, enable_turn_on_windows_mdm_manually=True)
    assert both.status_code == 422
    types = [a["type"] for a in server.get("/activities").json()["activities"]]
    assert types[:3] == [
        "enabled_windows_mdm_migration",
        "disabled_windows_mdm_manual_enrollment",
        "enabled_windows_mdm_manual_enrollment",
    ]


def test_unknown_keys_and_non_booleans(server):
    unknown = _mdm(server, turbo=True).json()["error"]
    assert unknown["field"] == "mdm.turbo" and unknown["message"] == rules.MESSAGE_UNKNOWN_SETTING.format(
        key="turbo"
    )
    not_bool = _mdm(server, windows_enabled_and_configured="yes").json()["error"]
    assert not_bool["message"] == rules.MESSAGE_NOT_BOOLEAN.format(key=rules.WINDOWS_ENABLED)
    top = server.patch("/config", json={"server_url": "x"}).json()["error"]
    assert top["field"] == "server_url"
    assert _mdm(server, Role.MAINTAINER, windows_enabled_and_configured=False).status_code == 403


def test_expired_license_means_free_with_a_warning(make_server, license_keys, clock):
    expired = license_keys.key(now=clock.now, days=-1)
    server = make_server(WINMDM_LICENSE_KEY=expired)
    lic = server.get("/config").json()["license"]
    assert lic["tier"] == "free" and "expired" in lic["warning"]
    assert (
        _mdm(server, enable_turn_on_windows_mdm_manually=True).json()["error"]["code"] == "premium_required"
    )


def test_a_license_that_expires_while_the_server_runs_is_free_everywhere_at_once(
    make_server, license_keys, clock
):
    issued = clock.now - timedelta(hours=23)  # expires in an hour, well within the admin's session
    server = make_server(WINMDM_LICENSE_KEY=license_keys.key(now=issued, days=1))
    assert server.get("/config").json()["license"]["tier"] == "premium"
    assert _mdm(server, enable_turn_on_windows_mdm_manually=True).status_code == 200
    assert _mdm(server, enable_turn_on_windows_mdm_manually=False).status_code == 200
    server.runtime.clock.advance(timedelta(hours=1, seconds=1))
    lic = server.get("/config").json()["license"]
    assert lic["tier"] == "free" and "expired" in lic["warning"]
    refused = _mdm(server, enable_turn_on_windows_mdm_manually=True).json()["error"]
    assert refused["code"] == "premium_required"


def test_turning_windows_mdm_off_refuses_new_enrollments(server):
    managed = server.enroll(manual=True)
    answer = _mdm(server, windows_enabled_and_configured=False)
    assert answer.status_code == 200 and answer.json()["mdm"]["windows_enabled_and_configured"] is False
    try:
        server.enroll(manual=True, email="bob@corp.example")
    except EnrollmentRefused as refused:
        assert refused.fault.reason == rules.MESSAGE_WINDOWS_MDM_OFF
    else:
        raise AssertionError("a new enrollment went through while Windows MDM was off")
    # The PC enrolled before keeps being managed.
    assert managed.session(server.client).header_codes[0] in (200, 212)
    server.runtime.clock.advance(timedelta(minutes=1))
    assert _mdm(server, windows_enabled_and_configured=True).status_code == 200
    WindowsDevice().enroll(
        server.client,
        DISCOVERY,
        email="bob@corp.example",
        token=server.entra.token(
            tenant_id=server.runtime.config.entra_tenant_ids[0],
            audience="https://mdm.corp.example",
            issued_at=server.runtime.clock(),
        ),
    )
    assert (
        server.client.get(API + "/hosts", headers=server.admins.headers(Role.OBSERVER)).json()["total"] == 2
    )
