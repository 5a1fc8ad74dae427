"""MDM-only enrollment ("Enroll only in device management") end to end over real HTTPS: a device
emulator, a real `winmdm serve`, and a real OIDC provider (npm oidc-provider on loopback).

Discovery answers Federated; the device opens AuthenticationServiceUrl with appru and login_hint
the way the Windows web view does, the user signs in at the provider, and the page's auto-POST
form hands back wresult, which the device sends (base64, DeviceEnrollmentUserToken) with
GetPolicies and RequestSecurityToken (protocol.md §5).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.device import HASHES, Enrolled, EnrollmentRefused, WindowsDevice
from tests.support.oidc import TestIdP, forms, sign_in
from tests.support.server import RunningServer, start_server
from winmdm.domain.models import TokenKind
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, wstep
from winmdm.protocol.discovery import AuthPolicy
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

APPRU = "ms-app://windows.immersivecontrolpanel"
CALLBACK_PATH = "/EnrollmentServer/Authenticate/callback"


class MDMOnlyDevice(WindowsDevice):
    """Windows in Settings > Access work or school > Enroll only in device management."""

    def web_sign_in(self, browser: httpx.Client, authentication_url: str, username: str) -> str:
        """The web authentication broker: AuthenticationServiceUrl + appru + login_hint, the
        provider's forms, and the final page's form, whose action must be our appru."""
        joiner = "&" if "?" in authentication_url else "?"
        url = authentication_url + joiner + urlencode({"appru": APPRU, "login_hint": username})
        page = sign_in(browser, url, username)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "text/html; charset=UTF-8"
        (form,) = forms(page.text, str(page.url))
        assert form.action == APPRU
        return form.fields["wresult"]

    def enroll_mdm_only(
        self, client: httpx.Client, discovery_url: str, *, email: str, username: str | None = None
    ) -> tuple[Enrolled, str]:
        assert client.get(discovery_url).status_code == 200
        found = self.discover(client, discovery_url, email=email)
        assert found.auth_policy is AuthPolicy.FEDERATED
        assert found.authentication_url
        wresult = self.web_sign_in(client, found.authentication_url, username or email)
        return self.enroll_with_token(client, wresult), wresult

    def enroll_with_token(self, client: httpx.Client, wresult: str) -> Enrolled:
        """GetPolicies and RST with wresult, from the URLs the last discovery gave."""
        found = self.last_discovery
        assert found is not None
        security = soap.Security(
            tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_USER_TOKEN, wresult.encode()),)
        )
        policy = self.get_policies(client, found.policy_url or found.enrollment_url, security)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert key.key_size >= policy.min_key_length
        body = wstep.build_rst(
            message_id=self._message_id(),
            to=found.enrollment_url,
            security=security,
            request=self.csr(key, HASHES[policy.hash_oid]),
            context=self.context(),
        )
        reply = self._post(client, found.enrollment_url, body)
        self.enrolled = self._accept(wstep.parse_rstr(reply), key, found.enrollment_url)
        return self.enrolled


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        yield running


@pytest.fixture(scope="module")
def mdm(tmp_path_factory: pytest.TempPathFactory, idp: TestIdP) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("mdm-only") / "data", idp.env())
    try:
        idp.configure(redirect_uris=[running.url + CALLBACK_PATH])
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def storage(mdm: RunningServer) -> Iterator[SQLStorage]:
    engine = create_engine_for(f"sqlite:///{mdm.data_dir / 'winmdm.db'}")
    yield SQLStorage(engine)
    engine.dispose()


def _host_and_enrollment(storage: SQLStorage, device_id: str):
    with storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device_id)
        assert enrollment is not None
        return tx.hosts.get(enrollment.host_id), enrollment


def test_a_user_signs_in_at_the_idp_and_the_device_enrolls(mdm: RunningServer, storage: SQLStorage) -> None:
    device = MDMOnlyDevice()
    with mdm.client() as client:
        enrolled, _ = device.enroll_mdm_only(client, mdm.discovery_url, email="alice@corp.example")
    assert device.last_discovery.authentication_url == mdm.url + "/EnrollmentServer/Authenticate"
    assert enrolled.management_url.startswith(mdm.url + "/")
    provider = enrolled.document.find("DMClient", "Provider", enrolled.provider_id)
    assert provider.value("UPN") == "alice@corp.example"
    host, enrollment = _host_and_enrollment(storage, device.device_id)
    assert host.idp_username == "alice@corp.example"
    assert enrollment.upn == "alice@corp.example"
    assert enrollment.token_kind is TokenKind.ENROLLMENT_TOKEN
    assert enrollment.not_in_oobe is True and enrollment.ux_initiated is True


def test_the_typed_address_is_only_a_hint_the_idp_decides_who_it_is(
    mdm: RunningServer, storage: SQLStorage
) -> None:
    device = MDMOnlyDevice()
    with mdm.client() as client:
        device.enroll_mdm_only(
            client, mdm.discovery_url, email="alice@corp.example", username="bob@corp.example"
        )
    host, _ = _host_and_enrollment(storage, device.device_id)
    assert host.idp_username == "bob@corp.example"


def test_a_user_the_idp_does_not_know_gets_no_token(mdm: RunningServer) -> None:
    device = MDMOnlyDevice()
    with mdm.client() as client:
        found = device.discover(client, mdm.discovery_url, email="mallory@corp.example")
        url = (
            found.authentication_url + "?" + urlencode({"appru": APPRU, "login_hint": "mallory@corp.example"})
        )
        page = sign_in(client, url, "mallory@corp.example")
    assert page.status_code == 400
    assert "access_denied" in page.text and "<form" not in page.text


def test_a_tampered_token_gets_the_authentication_fault(mdm: RunningServer) -> None:
    device = MDMOnlyDevice()
    with mdm.client() as client:
        found = device.discover(client, mdm.discovery_url, email="alice@corp.example")
        wresult = device.web_sign_in(client, found.authentication_url, "alice@corp.example")
        forged = wresult[:-4] + ("AAAA" if not wresult.endswith("AAAA") else "BBBB")
        with pytest.raises(EnrollmentRefused) as refused:
            device.enroll_with_token(client, forged)
    assert refused.value.fault.subcode == "s:Authentication"
    assert "start the enrollment again from Settings" in refused.value.fault.reason


def test_a_token_enrolls_one_device_only(mdm: RunningServer) -> None:
    """Single use: the enrollment that succeeds consumes the token; a replay by another device
    (or the same one) gets s:Authentication."""
    first, second = MDMOnlyDevice(), MDMOnlyDevice()
    with mdm.client() as client:
        _, wresult = first.enroll_mdm_only(client, mdm.discovery_url, email="alice@corp.example")
        second.discover(client, mdm.discovery_url, email="alice@corp.example")
        with pytest.raises(EnrollmentRefused) as refused:
            second.enroll_with_token(client, wresult)
        assert refused.value.fault.subcode == "s:Authentication"
        assert "already used" in refused.value.fault.reason
        with pytest.raises(EnrollmentRefused) as again:
            first.enroll_with_token(client, wresult)
        assert again.value.fault.subcode == "s:Authentication"


def test_used_tokens_are_forgotten_once_expired(mdm: RunningServer, storage: SQLStorage) -> None:
    """The single-use record of a token is needed only while the token could still be accepted:
    each enrollment by token drops the records of expired ones, so the table does not grow."""
    past = datetime.now(UTC) - timedelta(hours=1)
    with storage.transaction() as tx:
        assert tx.enrollment_tokens.consume("stale-jti", expires_at=past, at=past - timedelta(minutes=5))
    device = MDMOnlyDevice()
    with mdm.client() as client:
        _, wresult = device.enroll_mdm_only(client, mdm.discovery_url, email="alice@corp.example")
    with storage.transaction() as tx:
        # The stale record is gone (it may be used again: it names a token refused as expired)...
        assert tx.enrollment_tokens.consume("stale-jti", expires_at=past, at=past)
    # ...and the live token's record stays, so it still cannot be replayed.
    with mdm.client() as client, pytest.raises(EnrollmentRefused) as again:
        device.enroll_with_token(client, wresult)
    assert "already used" in again.value.fault.reason
