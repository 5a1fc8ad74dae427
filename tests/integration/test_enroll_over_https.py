"""A Windows device emulator enrolls into a running `winmdm serve` over real HTTPS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.x509.oid import NameOID

from tests.support.device import EnrollmentRefused, WindowsDevice


def test_device_enrolls_with_an_entra_token(server, token) -> None:
    device = WindowsDevice()
    with server.client() as client:
        enrolled = device.enroll(client, server.discovery_url, email="alice@corp.example", token=token())
    cert = enrolled.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device.device_id
    now = datetime.now(UTC)
    assert now - timedelta(minutes=6) < cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365, minutes=5)
    assert enrolled.management_url.startswith(server.url + "/")
    provider = enrolled.document.find("DMClient", "Provider", enrolled.provider_id)
    assert provider.value("UPN") == "alice@corp.example"
    poll = provider.find("Poll")
    assert poll.value("IntervalForFirstSetOfRetries") == "3"
    assert poll.value("NumberOfFirstRetries") == "5"
    assert poll.value("IntervalForSecondSetOfRetries") == "15"
    assert poll.value("NumberOfSecondRetries") == "8"
    assert poll.value("NumberOfRemainingScheduledRetries") == "0"
    assert poll.value("IntervalForRemainingScheduledRetries") == "480"
    renew = enrolled.document.find("CertificateStore", "My", "WSTEP", "Renew")
    assert renew.value("ROBOSupport") == "true"


def test_device_context_enrollment_uses_the_system_store(server, token) -> None:
    device = WindowsDevice(enrollment_type="Device", not_in_oobe=False, ux_initiated=False)
    with server.client() as client:
        enrolled = device.enroll(
            client, server.discovery_url, email="bob@corp.example", token=token(upn="bob@corp.example")
        )
    assert enrolled.document.find("CertificateStore", "My", "System") is not None


@pytest.mark.parametrize("version", ["4.0", "5.0", "6.0", "9.0"])
def test_every_request_version_enrolls(server, token, version: str) -> None:
    device = WindowsDevice(request_version=version)
    with server.client() as client:
        device.enroll(client, server.discovery_url, email="alice@corp.example", token=token())
    assert device.last_discovery is not None
    assert str(device.last_discovery.enrollment_version) in ("4.0", "5.0")


def test_renewal_keeps_the_device_enrolled(server, token) -> None:
    device = WindowsDevice()
    with server.client() as client:
        first = device.enroll(
            client, server.discovery_url, email="alice@corp.example", token=token()
        ).certificate
        renewed = device.renew(client)
    assert renewed.serial_number != first.serial_number
    assert renewed.subject == first.subject


def test_wrong_audience_is_refused_with_authentication_fault(server, entra) -> None:
    from tests.integration.conftest import TENANT

    device = WindowsDevice()
    with server.client() as client, pytest.raises(EnrollmentRefused) as refused:
        device.enroll(
            client,
            server.discovery_url,
            email="alice@corp.example",
            token=entra.token(tenant_id=TENANT, audience="https://someone-else.example"),
        )
    assert refused.value.fault.subcode == "s:Authentication"
    assert "audience" in refused.value.fault.reason
