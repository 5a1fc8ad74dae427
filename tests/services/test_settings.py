"""The MDM settings: defaults, the Premium tier, the rules between settings, activities."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services.conftest import SERVER, TENANT
from tests.support.device import EnrollmentRefused, WindowsDevice
from winmdm.domain.admin import Admin, AdminTokenKind, Principal, Role
from winmdm.errors import AuthorizationFailed, InvalidInput, PremiumRequired
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, wstep
from winmdm.protocol.discovery import AuthPolicy, DiscoverRequest
from winmdm.services.license import FREE, License, Tier
from winmdm.services.settings import (
    ENABLED_TTL,
    MESSAGE_END_USER_AUTH_NEEDS_SIGN_IN,
    MESSAGE_MANUAL_WHILE_MIGRATION,
    MESSAGE_MIGRATION_WHILE_MANUAL,
    MESSAGE_NOT_AN_OBJECT,
    MESSAGE_NOT_BOOLEAN,
    MESSAGE_PREMIUM_REQUIRED,
    MESSAGE_UNKNOWN_SETTING,
    MESSAGE_WINDOWS_MDM_OFF,
    MDMSettings,
    SettingsService,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PREMIUM = License(Tier.PREMIUM, "Contoso", NOW + timedelta(days=365))
MIGRATION = "windows_migration_enabled"
MANUAL = "enable_turn_on_windows_mdm_manually"


def principal(role: Role = Role.ADMIN, email: str = "alice@corp.example") -> Principal:
    return Principal(Admin(1, email, role, NOW), token_id=1, token_kind=AdminTokenKind.SESSION)


def service(storage, license: License = PREMIUM, **kwargs) -> SettingsService:
    kwargs.setdefault("sign_in_configured", True)
    return SettingsService(storage, lambda: NOW, license, **kwargs)


def activities(storage) -> list[tuple[str, str | None, dict]]:
    with storage.transaction() as tx:
        return [(a.type, a.actor, a.details) for a in reversed(tx.activities.list())]


def test_defaults_of_a_fresh_database(storage) -> None:
    assert service(storage).get() == MDMSettings(
        windows_enabled_and_configured=True,
        windows_migration_enabled=False,
        enable_turn_on_windows_mdm_manually=False,
        end_user_authentication=False,
    )


def test_end_user_authentication_follows_the_server_setting_until_an_admin_sets_it(storage) -> None:
    following = service(storage, end_user_authentication_default=True)
    assert following.get().end_user_authentication is True
    assert following.end_user_authentication() is True
    # Set to the value it already had: still pinned, so the server setting no longer decides.
    following.update({"end_user_authentication": True}, principal())
    assert service(storage, end_user_authentication_default=False).end_user_authentication() is True
    following.update({"end_user_authentication": False}, principal())
    assert service(storage, end_user_authentication_default=True).end_user_authentication() is False


def test_update_changes_and_writes_one_activity_per_change(storage) -> None:
    settings = service(storage)
    after = settings.update({MIGRATION: True, "windows_enabled_and_configured": False}, principal())
    assert after == MDMSettings(windows_enabled_and_configured=False, windows_migration_enabled=True)
    assert settings.get() == after
    assert settings.windows_enabled() is False
    settings.update({MIGRATION: False, MANUAL: True, "end_user_authentication": True}, "bob@corp.example")
    settings.update({MANUAL: False, "windows_enabled_and_configured": True}, None)
    assert activities(storage) == [
        (
            "disabled_windows_mdm",
            "alice@corp.example",
            {"setting": "mdm.windows_enabled_and_configured", "value": False},
        ),
        (
            "enabled_windows_mdm_migration",
            "alice@corp.example",
            {"setting": f"mdm.{MIGRATION}", "value": True},
        ),
        (
            "disabled_windows_mdm_migration",
            "bob@corp.example",
            {"setting": f"mdm.{MIGRATION}", "value": False},
        ),
        (
            "enabled_windows_mdm_manual_enrollment",
            "bob@corp.example",
            {"setting": f"mdm.{MANUAL}", "value": True},
        ),
        (
            "enabled_end_user_authentication",
            "bob@corp.example",
            {"setting": "mdm.end_user_authentication", "value": True, "team_id": None, "team_name": None},
        ),
        ("enabled_windows_mdm", None, {"setting": "mdm.windows_enabled_and_configured", "value": True}),
        ("disabled_windows_mdm_manual_enrollment", None, {"setting": f"mdm.{MANUAL}", "value": False}),
    ]


def test_no_change_is_no_activity(storage) -> None:
    settings = service(storage)
    assert settings.update({}, principal()) == settings.get()
    settings.update({"windows_enabled_and_configured": True, MIGRATION: False}, principal())
    assert activities(storage) == []


@pytest.mark.parametrize("key", [MIGRATION, MANUAL])
def test_premium_settings_on_free_are_refused_naming_the_license(storage, key: str) -> None:
    settings = service(storage, FREE)
    with pytest.raises(PremiumRequired) as raised:
        settings.update({key: True}, principal())
    assert raised.value.field == f"mdm.{key}"
    assert raised.value.message == MESSAGE_PREMIUM_REQUIRED.format(key=key)
    assert "Premium" in raised.value.message and "WINMDM_LICENSE_KEY" in raised.value.message
    assert isinstance(raised.value, InvalidInput)
    # Off is always allowed, and Free settings work.
    settings.update({key: False, "windows_enabled_and_configured": False}, principal())
    assert settings.get().windows_enabled_and_configured is False


def test_an_expired_premium_license_is_free(storage) -> None:
    lapsed = License(Tier.PREMIUM, "Contoso", NOW - timedelta(seconds=1))
    settings = service(storage, lapsed)
    assert settings.license().tier is Tier.FREE and "expired" in settings.license().warning
    with pytest.raises(PremiumRequired):
        settings.update({MIGRATION: True}, principal())


def test_manual_while_migration_is_on(storage) -> None:
    settings = service(storage)
    settings.update({MIGRATION: True}, principal())
    with pytest.raises(InvalidInput) as raised:
        settings.update({MANUAL: True}, principal())
    assert raised.value.message == MESSAGE_MANUAL_WHILE_MIGRATION
    assert raised.value.field == f"mdm.{MANUAL}"
    assert "Turn off mdm.windows_migration_enabled first" in raised.value.message
    assert settings.get().enable_turn_on_windows_mdm_manually is False


def test_migration_while_manual_is_on(storage) -> None:
    settings = service(storage)
    settings.update({MANUAL: True}, principal())
    with pytest.raises(InvalidInput) as raised:
        settings.update({MIGRATION: True}, principal())
    assert raised.value.message == MESSAGE_MIGRATION_WHILE_MANUAL
    assert raised.value.field == f"mdm.{MIGRATION}"
    assert "Turn off mdm.enable_turn_on_windows_mdm_manually first" in raised.value.message


def test_both_on_in_one_change_is_refused_and_changes_nothing(storage) -> None:
    settings = service(storage)
    with pytest.raises(InvalidInput) as raised:
        settings.update({MIGRATION: True, MANUAL: True, "windows_enabled_and_configured": False}, principal())
    assert raised.value.message == MESSAGE_MANUAL_WHILE_MIGRATION
    assert settings.get() == MDMSettings()
    assert activities(storage) == []


def test_switching_from_migration_to_manual_in_one_change(storage) -> None:
    settings = service(storage)
    settings.update({MIGRATION: True}, principal())
    after = settings.update({MIGRATION: False, MANUAL: True}, principal())
    assert after.enable_turn_on_windows_mdm_manually and not after.windows_migration_enabled


@pytest.mark.parametrize(
    ("changes", "message", "field"),
    [
        (
            {"windows_enabled": True},
            MESSAGE_UNKNOWN_SETTING.format(key="windows_enabled"),
            "mdm.windows_enabled",
        ),
        ({MIGRATION: "true"}, MESSAGE_NOT_BOOLEAN.format(key=MIGRATION), f"mdm.{MIGRATION}"),
        ({"end_user_authentication": 1}, MESSAGE_NOT_BOOLEAN.format(key="end_user_authentication"), None),
        ({"windows_enabled_and_configured": None}, None, "mdm.windows_enabled_and_configured"),
    ],
)
def test_unknown_keys_and_non_booleans(storage, changes, message, field) -> None:
    with pytest.raises(InvalidInput) as raised:
        service(storage).update(changes, principal())
    if message is not None:
        assert raised.value.message == message
    if field is not None:
        assert raised.value.field == field
    key = next(iter(changes))
    assert f"mdm.{key}" in raised.value.message


def test_not_an_object(storage) -> None:
    with pytest.raises(InvalidInput) as raised:
        service(storage).update(["windows_enabled_and_configured"], principal())  # type: ignore[arg-type]
    assert raised.value.message == MESSAGE_NOT_AN_OBJECT and raised.value.field == "mdm"


def test_end_user_authentication_needs_a_sign_in_provider(storage) -> None:
    settings = service(storage, sign_in_configured=False)
    with pytest.raises(InvalidInput) as raised:
        settings.update({"end_user_authentication": True}, principal())
    assert raised.value.message == MESSAGE_END_USER_AUTH_NEEDS_SIGN_IN
    assert raised.value.field == "mdm.end_user_authentication"
    settings.update({"end_user_authentication": False}, principal())


@pytest.mark.parametrize("role", [Role.MAINTAINER, Role.OBSERVER])
def test_only_admins_change_settings(storage, role: Role) -> None:
    with pytest.raises(AuthorizationFailed):
        service(storage).update({"windows_enabled_and_configured": False}, principal(role))
    assert service(storage).get().windows_enabled_and_configured is True


# --- effects: Windows MDM off (over HTTP, as Windows sees it) ---------------------------------


def _discover_request() -> DiscoverRequest:
    return DiscoverRequest(
        None,
        None,
        "alice@corp.example",
        Decimal("5.0"),
        "CIMClient_Windows",
        None,
        "48",
        (AuthPolicy.FEDERATED,),
    )


DISCOVERY = SERVER + "/EnrollmentServer/Discovery.svc"


def _refusal(refused: pytest.ExceptionInfo[EnrollmentRefused]) -> tuple[str, str, str | None]:
    fault = refused.value.fault
    return fault.subcode, fault.reason, fault.detail_type


def test_windows_mdm_off_refuses_discovery_policies_and_enrollment_but_renews(runtime, client, token) -> None:
    """Devices already enrolled keep renewing; nothing new discovers or enrolls until it is on."""
    enrolled = WindowsDevice()
    enrolled.enroll(client, DISCOVERY, email="alice@corp.example", token=token())
    assert runtime.settings.get().windows_enabled_and_configured is True
    runtime.settings.update({"windows_enabled_and_configured": False}, "admin@corp.example")
    refused_as = ("s:Authorization", MESSAGE_WINDOWS_MDM_OFF, "CustomServerError")

    newcomer = WindowsDevice()
    with pytest.raises(EnrollmentRefused) as refused:
        newcomer.discover(client, DISCOVERY, email="bob@corp.example")
    assert _refusal(refused) == refused_as
    assert "Contact your IT administrator" in refused.value.fault.reason
    security = soap.Security(
        tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, token(upn="bob@corp.example").encode()),)
    )
    enrollment_url = enrolled.enrolled.enrollment_url
    with pytest.raises(EnrollmentRefused) as refused:
        newcomer.get_policies(client, enrollment_url, security)
    assert _refusal(refused) == refused_as
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rst = wstep.build_rst(
        message_id=f"urn:uuid:{uuid.uuid4()}",
        to=enrollment_url,
        security=security,
        request=newcomer.csr(key, hashes.SHA256()),
        context=newcomer.context(),
    )
    with pytest.raises(EnrollmentRefused) as refused:
        newcomer._post(client, enrollment_url, rst)
    assert _refusal(refused) == refused_as

    renewed = enrolled.renew(client)
    assert renewed.serial_number != 0

    runtime.settings.update({"windows_enabled_and_configured": True}, "admin@corp.example")
    newcomer.enroll(client, DISCOVERY, email="bob@corp.example", token=token(upn="bob@corp.example"))
    with runtime.storage.transaction() as tx:
        assert [a.type for a in tx.activities.list() if "windows_mdm" in a.type] == [
            "enabled_windows_mdm",
            "disabled_windows_mdm",
        ]


def test_enrollment_service_without_settings_is_always_on(service) -> None:

    request = _discover_request()
    assert service.discover(request).enrollment_url.startswith(SERVER)


def test_the_enrollment_service_reads_the_setting_at_each_request(storage, device_ca, entra, clock) -> None:
    from winmdm.idp.entra import EntraVerifier
    from winmdm.idp.jwks import JWKSCache
    from winmdm.services.authentication import Authenticator
    from winmdm.services.endpoints import Endpoints
    from winmdm.services.enrollment import EnrollmentService, EnrollmentSettings

    settings = service(storage)
    enrollment = EnrollmentService(
        storage=storage,
        ca=device_ca,
        authenticator=Authenticator(EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url))),
        endpoints=Endpoints.from_server_url(SERVER),
        settings=EnrollmentSettings(),
        clock=clock,
        mdm_settings=settings,
    )
    request = _discover_request()
    enrollment.discover(request)
    settings.update({"windows_enabled_and_configured": False}, None)
    with pytest.raises(AuthorizationFailed) as refused:
        enrollment.discover(request)
    assert refused.value.message == MESSAGE_WINDOWS_MDM_OFF
    assert refused.value.detail_type == "CustomServerError"
    with pytest.raises(AuthorizationFailed):
        enrollment.policy_terms(soap.Security())


# --- effects: No team's end-user authentication on the Entra terms page -----------------------


def test_the_terms_page_follows_no_teams_setting_at_each_request(storage, entra, clock, token) -> None:
    from winmdm.idp.entra import EntraVerifier
    from winmdm.idp.jwks import JWKSCache
    from winmdm.services.terms import Outcome, TermsOfUse

    settings = service(storage, end_user_authentication_default=False)
    terms = TermsOfUse(
        EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url)),
        clock,
        b"k" * 32,
        end_user_auth=settings.end_user_authentication,
    )
    request = {
        "redirect_uri": "ms-appx-web://Microsoft.AAD.BrokerPlugin/ToUResponse",
        "client-request-id": str(uuid.uuid4()),
        "api-version": "1.0",
    }
    shown = terms.check(f"Bearer {token()}", request)
    assert terms.end_user_auth is False and shown.outcome is Outcome.SHOW
    settings.update({"end_user_authentication": True}, principal())
    assert terms.end_user_auth is True
    assert terms.check(f"Bearer {token()}", request).outcome is Outcome.SIGN_IN
    # A page shown before the change cannot be accepted without the sign-in now.
    answered = terms.answer({"state": shown.prompt.state, "answer": "accept"})
    assert answered.outcome is Outcome.REDIRECT and "error=unauthorized_client" in answered.location
    settings.update({"end_user_authentication": False}, principal())
    assert terms.check(f"Bearer {token()}", request).outcome is Outcome.SHOW


def test_the_server_wires_the_settings_into_terms_and_enrollment(runtime) -> None:
    """Without an OIDC provider the terms page never asks for the sign-in, whatever is stored."""
    assert runtime.settings.get() == MDMSettings()
    assert runtime.settings.license().tier is Tier.FREE and runtime.settings.license().warning is None
    assert runtime.terms.end_user_auth is False
    with pytest.raises(InvalidInput, match="WINMDM_OIDC_ISSUER"):
        runtime.settings.update({"end_user_authentication": True}, None)


def test_windows_enabled_is_read_at_most_once_a_second_and_own_changes_count_at_once(storage) -> None:
    ticks = [100.0]
    here = service(storage, monotonic=lambda: ticks[0])
    elsewhere = service(storage)  # another instance on the same database
    assert here.windows_enabled() is True
    elsewhere.update({"windows_enabled_and_configured": False}, principal())
    assert here.windows_enabled() is True  # still within the second it trusts
    ticks[0] += ENABLED_TTL
    assert here.windows_enabled() is False
    here.update({"windows_enabled_and_configured": True}, principal())
    assert here.windows_enabled() is True  # its own change at once
