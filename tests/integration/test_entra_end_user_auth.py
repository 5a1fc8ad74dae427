"""End-user authentication on the Entra terms page, end to end over real HTTPS: a real `winmdm
serve` with WINMDM_END_USER_AUTH, real RS256 Entra tokens, a real OIDC provider (npm
oidc-provider on loopback) and the device emulator.

The Entra user (alice) opens the terms page; winmdm sends her to the IdP, where the person signs
in as bob (double-auth); the page then shows Accept naming both, and the OpaqueBlob it hands back
comes with the enrollment as ContextItem EnrollmentData. The enrollment keeps the Entra UPN as its
user and the host's IdP username, and stores the IdP username beside it (issue 5, item 5).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.integration.conftest import TENANT
from tests.support.device import WindowsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.support.oidc import TestIdP, forms, login_at_idp
from tests.support.server import RunningServer, start_server
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

TERMS_PATH = "/EnrollmentServer/TermsOfUse"
CALLBACK_PATH = TERMS_PATH + "/callback"
REDIRECT = "ms-appx-web://Microsoft.AAD.BrokerPlugin/ToUResponse"


@dataclass
class TermsDevice(WindowsDevice):
    """Windows after the terms of use: the OpaqueBlob goes back as ContextItem EnrollmentData."""

    enrollment_data: str | None = None

    def context(self) -> list[tuple[str, str]]:
        items = super().context()
        if self.enrollment_data is not None:
            items.append(("EnrollmentData", self.enrollment_data))
        return items


@pytest.fixture(scope="module")
def idp() -> Iterator[TestIdP]:
    with TestIdP.start() as running:
        yield running


@pytest.fixture(scope="module")
def mdm(
    tmp_path_factory: pytest.TempPathFactory, entra: EntraIssuer, idp: TestIdP
) -> Iterator[RunningServer]:
    env = {
        "WINMDM_ENTRA_TENANT_IDS": TENANT,
        "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        **idp.env(),
        "WINMDM_END_USER_AUTH": "true",
    }
    running = start_server(tmp_path_factory.mktemp("end-user-auth") / "data", env)
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


def entra_token(entra: EntraIssuer, mdm: RunningServer, upn: str) -> str:
    return entra.token(tenant_id=TENANT, audience=mdm.url, upn=upn)


def accept_terms(browser: httpx.Client, mdm: RunningServer, token: str, idp_user: str) -> tuple[str, str]:
    """The Entra web view: the terms URL with the bearer token, the IdP's forms, winmdm's terms
    page, Accept. Returns the terms page's HTML and the OpaqueBlob of the ms-appx-web redirect."""
    crid = str(uuid.uuid4())
    query = urlencode(
        {"redirect_uri": REDIRECT, "client-request-id": crid, "api-version": "1.0", "mode": "azureadjoin"}
    )
    first = browser.get(
        mdm.url + TERMS_PATH + "?" + query,
        headers={"Authorization": f"Bearer {token}", "CXH-HOST": "FRX"},
    )
    assert first.status_code == 302, first.text
    sent = {k: v[0] for k, v in parse_qs(urlsplit(first.headers["location"]).query).items()}
    assert sent["login_hint"] == "alice@corp.example"
    page = login_at_idp(browser, first, idp_user)
    assert page.status_code == 200, page.text
    assert str(page.url).startswith(mdm.url + CALLBACK_PATH)
    (form,) = [f for f in forms(page.text, str(page.url)) if "state" in f.fields]
    assert form.action == mdm.url + TERMS_PATH
    answer = browser.post(form.action, data={**form.fields, "answer": "accept"}, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    values = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert values["IsAccepted"] == "true" and values["client-request-id"] == crid
    return page.text, values["OpaqueBlob"]


def stored(storage: SQLStorage, device_id: str):
    with storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device_id)
        assert enrollment is not None
        return tx.hosts.get(enrollment.host_id), enrollment


def test_the_idp_username_is_stored_beside_the_entra_upn(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer
) -> None:
    with mdm.client() as browser:
        page, blob = accept_terms(
            browser, mdm, entra_token(entra, mdm, "alice@corp.example"), "bob@corp.example"
        )
    assert "Signed in as alice@corp.example" in page
    assert "Identity provider: signed in as bob@corp.example" in page

    device = TermsDevice(enrollment_data=blob, not_in_oobe=False, ux_initiated=False)
    with mdm.client() as client:
        enrolled = device.enroll(
            client,
            mdm.discovery_url,
            email="alice@corp.example",
            token=entra_token(entra, mdm, "alice@corp.example"),
        )
    provider = enrolled.document.find("DMClient", "Provider", enrolled.provider_id)
    assert provider.value("UPN") == "alice@corp.example"
    host, enrollment = stored(storage, device.device_id)
    assert enrollment.upn == "alice@corp.example"
    assert enrollment.end_user_username == "bob@corp.example"
    assert host.idp_username == "alice@corp.example"
    assert host.team_id is None  # a new host: No team, whose rule this is


def test_an_enrollment_without_a_blob_is_not_refused_and_has_no_end_user(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer
) -> None:
    """Group Policy and device-credential enrollments never saw the terms page."""
    device = TermsDevice()
    with mdm.client() as client:
        device.enroll(
            client,
            mdm.discovery_url,
            email="alice@corp.example",
            token=entra_token(entra, mdm, "alice@corp.example"),
        )
    host, enrollment = stored(storage, device.device_id)
    assert enrollment.upn == "alice@corp.example" and enrollment.end_user_username is None
    assert host.idp_username == "alice@corp.example"


def test_a_blob_accepted_by_another_entra_user_gives_no_end_user(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer
) -> None:
    with mdm.client() as browser:
        _, blob = accept_terms(
            browser, mdm, entra_token(entra, mdm, "alice@corp.example"), "bob@corp.example"
        )
    device = TermsDevice(enrollment_data=blob)
    with mdm.client() as client:
        device.enroll(
            client,
            mdm.discovery_url,
            email="carol@corp.example",
            token=entra_token(entra, mdm, "carol@corp.example"),
        )
    _, enrollment = stored(storage, device.device_id)
    assert enrollment.upn == "carol@corp.example" and enrollment.end_user_username is None
