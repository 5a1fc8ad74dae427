"""A PC winmdm knows follows its team's end-user authentication on the Entra terms page, end to
end over real HTTPS: a real `winmdm serve` (OIDC provider configured, No team's end-user
authentication off), real RS256 Entra tokens carrying the Entra device id (``deviceid``), a real
OIDC provider (npm oidc-provider on loopback) and the device emulator.

The terms page sees no hardware id; it recognises the PC by the Entra device id its earlier Entra
enrollment recorded on the host (services/end_user_auth.py). A PC it does not know lands in No
team, so it follows No team's setting (design.md §1, "IdP username").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.integration.conftest import TENANT
from tests.integration.test_entra_end_user_auth import CALLBACK_PATH, REDIRECT, TERMS_PATH, TermsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.support.oidc import TestIdP, forms, login_at_idp
from tests.support.server import RunningServer, start_server
from winmdm.runtime import utc_now
from winmdm.services.hosts import HostService
from winmdm.services.license import FREE
from winmdm.services.settings import SettingsService
from winmdm.services.teams import TeamService
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

ADMIN = "admin@corp.example"
ALICE = "alice@corp.example"


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
        "WINMDM_END_USER_AUTH": "false",  # No team: off
    }
    running = start_server(tmp_path_factory.mktemp("team-end-user-auth") / "data", env)
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


@pytest.fixture
def no_team(storage: SQLStorage) -> Iterator[SettingsService]:
    """No team's switch as an admin sets it (the server reads it at each request); back off after."""
    settings = SettingsService(storage, utc_now, FREE, sign_in_configured=True)
    yield settings
    settings.update({"end_user_authentication": False}, ADMIN)


def entra_token(entra: EntraIssuer, mdm: RunningServer, device_id: str | None = None) -> str:
    return entra.token(tenant_id=TENANT, audience=mdm.url, upn=ALICE, device_id=device_id)


def open_terms(browser: httpx.Client, mdm: RunningServer, token: str) -> httpx.Response:
    """The Entra web view opens the terms URL with the bearer token (no redirect followed)."""
    query = urlencode(
        {"redirect_uri": REDIRECT, "client-request-id": str(uuid.uuid4()), "api-version": "1.0"}
    )
    return browser.get(mdm.url + TERMS_PATH + "?" + query, headers={"Authorization": f"Bearer {token}"})


def sent_to_idp(first: httpx.Response, idp: TestIdP) -> bool:
    return first.status_code == 302 and first.headers["location"].startswith(idp.issuer + "/")


def accept(browser: httpx.Client, page: httpx.Response) -> str:
    """Accept on winmdm's terms page; the OpaqueBlob of the ms-appx-web redirect."""
    assert page.status_code == 200, page.text
    (form,) = [f for f in forms(page.text, str(page.url)) if "state" in f.fields]
    answer = browser.post(form.action, data={**form.fields, "answer": "accept"}, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    values = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
    assert values["IsAccepted"] == "true"
    return values["OpaqueBlob"]


def enroll(mdm: RunningServer, entra: EntraIssuer, device: TermsDevice, blob: str, entra_id: str) -> None:
    device.enrollment_data = blob
    with mdm.client() as client:
        device.enroll(client, mdm.discovery_url, email=ALICE, token=entra_token(entra, mdm, entra_id))


def stored(storage: SQLStorage, device: TermsDevice):
    with storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
        assert enrollment is not None
        return tx.hosts.get(enrollment.host_id), enrollment


def enrolled_through_entra(
    mdm: RunningServer, entra: EntraIssuer, idp: TestIdP, storage: SQLStorage, entra_id: str
) -> tuple[TermsDevice, int]:
    """A PC's first Entra enrollment: the terms (its token has no device id yet), then the
    enrollment whose token has one. A new host, in No team (off): no sign-in."""
    device = TermsDevice()
    with mdm.client() as browser:
        first = open_terms(browser, mdm, entra_token(entra, mdm))
        assert not sent_to_idp(first, idp)
        blob = accept(browser, first)
    enroll(mdm, entra, device, blob, entra_id)
    host, enrollment = stored(storage, device)
    assert host.team_id is None and host.entra_device_id == entra_id
    assert enrollment.end_user_username is None
    return device, host.id


def move(storage: SQLStorage, host_id: int, name: str, *, end_user_authentication: bool) -> int:
    team = TeamService(storage, utc_now).create(
        name, end_user_authentication=end_user_authentication, actor=ADMIN
    )
    assert HostService(storage, utc_now).transfer(team.id, [host_id], actor=ADMIN) == 1
    return team.id


def test_a_known_pc_in_a_team_with_end_user_auth_signs_in_when_it_enrolls_again(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer, idp: TestIdP
) -> None:
    entra_id = str(uuid.uuid4())
    device, host_id = enrolled_through_entra(mdm, entra, idp, storage, entra_id)
    team_id = move(storage, host_id, "Finance", end_user_authentication=True)

    # Enrolling again (a reset, a re-join): the token names the Entra device.
    with mdm.client() as browser:
        first = open_terms(browser, mdm, entra_token(entra, mdm, entra_id))
        assert sent_to_idp(first, idp), first.text
        sent = {k: v[0] for k, v in parse_qs(urlsplit(first.headers["location"]).query).items()}
        assert sent["login_hint"] == ALICE
        page = login_at_idp(browser, first, "bob@corp.example")
        assert str(page.url).startswith(mdm.url + CALLBACK_PATH)
        assert f"Signed in as {ALICE}" in page.text
        assert "Identity provider: signed in as bob@corp.example" in page.text
        blob = accept(browser, page)
    enroll(mdm, entra, device, blob, entra_id)

    host, enrollment = stored(storage, device)
    assert host.id == host_id and host.team_id == team_id  # re-enrollment never moves a host
    assert enrollment.upn == ALICE and enrollment.end_user_username == "bob@corp.example"
    assert host.idp_username == ALICE  # the enrollment's UPN, not replaced


def test_a_known_pc_in_a_team_without_it_is_not_asked_even_when_no_team_is(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer, idp: TestIdP, no_team: SettingsService
) -> None:
    entra_id = str(uuid.uuid4())
    device, host_id = enrolled_through_entra(mdm, entra, idp, storage, entra_id)
    move(storage, host_id, "Kiosks", end_user_authentication=False)
    no_team.update({"end_user_authentication": True}, ADMIN)

    with mdm.client() as browser:
        first = open_terms(browser, mdm, entra_token(entra, mdm, entra_id))
        assert not sent_to_idp(first, idp)
        assert "Identity provider" not in first.text
        # The POST has no token: it keeps the GET's decision, not No team's.
        blob = accept(browser, first)
    enroll(mdm, entra, device, blob, entra_id)
    host, enrollment = stored(storage, device)
    assert host.id == host_id and enrollment.end_user_username is None


def test_an_unknown_pc_follows_no_team(
    mdm: RunningServer, storage: SQLStorage, entra: EntraIssuer, idp: TestIdP, no_team: SettingsService
) -> None:
    # Known, and in a team that requires it: another PC's id never stands in for an unknown one.
    _, host_id = enrolled_through_entra(mdm, entra, idp, storage, str(uuid.uuid4()))
    move(storage, host_id, "Legal", end_user_authentication=True)
    stranger = str(uuid.uuid4())
    with mdm.client() as browser:
        for device_id in (stranger, None):
            assert not sent_to_idp(open_terms(browser, mdm, entra_token(entra, mdm, device_id)), idp)
        no_team.update({"end_user_authentication": True}, ADMIN)
        for device_id in (stranger, None):
            assert sent_to_idp(open_terms(browser, mdm, entra_token(entra, mdm, device_id)), idp)
