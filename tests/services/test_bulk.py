"""Bulk enrollment: per-team secrets in a provisioning package, through the whole app in-process
on SQLite and PostgreSQL, the way Windows uses a Windows Configuration Designer package."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from tests.services.conftest import SERVER
from tests.support.bulk import enroll_with_package
from tests.support.device import EnrollmentRefused, WindowsDevice
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import TokenKind
from winmdm.errors import NotFound
from winmdm.protocol.discovery import AuthPolicy
from winmdm.runtime import Runtime
from winmdm.services.bulk import EnrollmentSecrets, bulk_upn, secret_hash, wcd_customizations

HOST = "mdm.corp.example"
DISCOVERY = SERVER + "/EnrollmentServer/Discovery.svc"


@pytest.fixture
def secrets_service(runtime) -> EnrollmentSecrets:
    return runtime.bulk


@pytest.fixture
def finance(runtime) -> int:
    with runtime.storage.transaction() as tx:
        return tx.teams.create("Finance", at=datetime.now(UTC)).id


def host_of(runtime: Runtime, device: WindowsDevice):
    with runtime.storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
        return tx.hosts.get(enrollment.host_id), enrollment


def test_a_package_enrolls_into_its_team_as_automatic(runtime, client, secrets_service, finance) -> None:
    created = secrets_service.create(finance)
    device = WindowsDevice(ux_initiated=False, not_in_oobe=True)
    found = enroll_with_package(client, device, bulk_upn(HOST), created.secret, DISCOVERY)
    assert found.auth_policy is AuthPolicy.ON_PREMISE and found.authentication_url is None
    host, enrollment = host_of(runtime, device)
    assert host.team_id == finance
    assert enrollment.token_kind is TokenKind.BULK_SECRET
    assert enrollment.enrollment_kind is EnrollmentKind.AUTOMATIC
    assert host.enrollment_kind is EnrollmentKind.AUTOMATIC
    assert enrollment.upn is None  # a package is nobody's identity


def test_secrets_are_stored_hashed_and_rotation_retires_them(
    runtime, client, secrets_service, finance
) -> None:
    first = secrets_service.create(finance)
    assert first.record.secret_hash == secret_hash(first.secret) != first.secret
    rotated = secrets_service.rotate(finance)
    assert [s.revoked_at is not None for s in secrets_service.list(finance)] == [True, False]
    with pytest.raises(EnrollmentRefused) as refused:
        enroll_with_package(client, WindowsDevice(), bulk_upn(HOST), first.secret, DISCOVERY)
    assert refused.value.fault.subcode == "s:Authentication"
    assert "rotated" in refused.value.fault.reason
    enroll_with_package(client, WindowsDevice(), bulk_upn(HOST), rotated.secret, DISCOVERY)


def test_only_the_package_upn_may_use_a_secret(runtime, client, secrets_service) -> None:
    created = secrets_service.create(None)
    with pytest.raises(EnrollmentRefused) as refused:
        enroll_with_package(client, WindowsDevice(), "alice@corp.example", created.secret, DISCOVERY)
    assert refused.value.fault.subcode == "s:Authentication"


def test_no_team_secret_and_unknown_team(runtime, client, secrets_service) -> None:
    created = secrets_service.create(None)
    device = WindowsDevice()
    enroll_with_package(client, device, bulk_upn(HOST), created.secret, DISCOVERY)
    host, _ = host_of(runtime, device)
    assert host.team_id is None
    with pytest.raises(NotFound):
        secrets_service.create(999_999)


def test_the_wcd_settings_name_the_package_upn_urls_and_secret(runtime) -> None:
    xml = wcd_customizations(
        endpoints=runtime.endpoints, server_host=HOST, secret="s3cr&t", package_name="Finance"
    )
    root = etree.fromstring(xml)
    assert root.tag == "WindowsCustomizatons"  # Microsoft's own spelling, which its tools expect
    config = {"p": "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"}
    assert [e.tag.split("}")[1] for e in root.find("p:PackageConfig", config)] == [
        "ID",
        "Name",
        "Version",
        "OwnerType",
        "Rank",
    ]
    ns = {"w": "urn:schemas-microsoft-com:windows-provisioning"}
    upn = root.find(".//w:Enrollments/w:UPN", ns)
    assert upn.get("UPN") == bulk_upn(HOST)
    assert upn.findtext("w:AuthPolicy", namespaces=ns) == "OnPremise"
    assert upn.findtext("w:DiscoveryServiceFullUrl", namespaces=ns) == DISCOVERY
    assert upn.findtext("w:Secret", namespaces=ns) == "s3cr&t"
