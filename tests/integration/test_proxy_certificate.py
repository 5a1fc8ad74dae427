"""Behind a TLS-terminating proxy the device certificate arrives in a header, believed only from
the configured proxy addresses (WINMDM_TRUSTED_PROXIES, WINMDM_CLIENT_CERT_HEADER)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from tests.support.server import start_server
from winmdm.protocol.syncml import StatusCode


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, entra):
    data_dir = tmp_path_factory.mktemp("proxied") / "data"
    server = start_server(
        data_dir,
        {
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
            "WINMDM_TRUSTED_PROXIES": "127.0.0.1",
            "WINMDM_CLIENT_CERT_HEADER": "X-Client-Cert",
        },
    )
    yield server
    server.stop()


def _managed(server, entra) -> ManagedDevice:
    device = WindowsDevice()
    with server.client() as client:
        device.enroll(
            client,
            server.discovery_url,
            email="alice@corp.example",
            token=entra.token(tenant_id=TENANT, audience=server.url),
        )
    return ManagedDevice(device)


def _header(managed: ManagedDevice) -> dict[str, str]:
    pem = managed.device.enrolled.certificate.public_bytes(serialization.Encoding.PEM).decode()
    return {"X-Client-Cert": quote(pem, safe="")}


def test_the_proxy_header_identifies_the_device(proxied, entra) -> None:
    managed = _managed(proxied, entra)
    # No TLS client certificate: the "proxy" (this loopback client) passes it in the header.
    with proxied.client(headers=_header(managed)) as client:
        log = managed.session(client)
    assert log.header_codes[0] == StatusCode.AUTHENTICATION_ACCEPTED


def test_a_header_naming_another_device_is_refused(proxied, entra) -> None:
    victim, attacker = _managed(proxied, entra), _managed(proxied, entra)
    attacker.device.device_id = victim.device.device_id
    attacker.credential, attacker.name, attacker.nonce = victim.credential, victim.name, victim.nonce
    with proxied.client(headers=_header(attacker)) as client:
        log = attacker.session(client)
    assert log.header_codes == [StatusCode.FORBIDDEN]


def test_the_header_is_ignored_from_untrusted_addresses(server, entra) -> None:
    """The module's main server trusts no proxy: a forged header changes nothing."""
    victim, attacker = _managed(server, entra), _managed(server, entra)
    with server.client(headers=_header(victim)) as client:
        # Without a TLS certificate and with the victim's cert in a header, the attacker's own
        # digest credentials still decide: it is authenticated as itself, never as the victim,
        # and by digest alone (200 and a new nonce per message, never 212).
        log = attacker.session(client)
    assert log.header_codes[0] == StatusCode.OK
    attacker.device.device_id = victim.device.device_id
    with server.client(headers=_header(victim)) as client:
        forged = attacker.session(client)  # the victim's id with the attacker's secret
    assert set(forged.header_codes) == {StatusCode.INVALID_CREDENTIALS}
