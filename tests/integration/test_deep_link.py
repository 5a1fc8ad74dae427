"""The ms-device-enrollment: deep link with a pre-authorized token, over real HTTPS: Windows
POSTs Discover to the link's servername (query included), opens the AuthenticationServiceUrl,
which takes the token in place of signing in, and enrolls with it once."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.integration.test_mdm_only_enrollment import APPRU, MDMOnlyDevice
from tests.support.device import EnrollmentRefused
from tests.support.oidc import forms
from tests.support.server import start_server
from winmdm.config import load_config
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import TokenKind
from winmdm.runtime import build


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """A server without any identity provider: the link alone authorizes the enrollment."""
    server = start_server(tmp_path_factory.mktemp("deep-link") / "data", {})
    runtime = build(
        load_config({k: v for k, v in server.env.items() if k.startswith("WINMDM_")}), with_tls=False
    )
    yield server, runtime
    runtime.close()
    server.stop()


def _servername(link: str) -> str:
    assert link.startswith("ms-device-enrollment:?")
    params = parse_qs(link.split("?", 1)[1])
    assert params["mode"] == ["mdm"]
    return params["servername"][0]


def test_a_preauthorized_link_enrolls_one_pc_without_signing_in(linked) -> None:
    server, runtime = linked
    link = runtime.deep_links.link("alice@corp.example", preauthorize=True, now=datetime.now(UTC))
    servername = _servername(link)
    assert urlsplit(servername).path == "/EnrollmentServer/Discovery.svc" and "token=" in servername
    device = MDMOnlyDevice()
    with server.client() as client:
        found = device.discover(client, servername, email="alice@corp.example")
        assert "token=" in (found.authentication_url or "")
        page = client.get(found.authentication_url + "&" + urlencode({"appru": APPRU, "login_hint": "alice"}))
        assert page.status_code == 200
        (form,) = forms(page.text, str(page.url))
        assert form.action == APPRU
        device.enroll_with_token(client, form.fields["wresult"])
        with runtime.storage.transaction() as tx:
            enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
            host = tx.hosts.get(enrollment.host_id)
        assert enrollment.token_kind is TokenKind.ENROLLMENT_TOKEN
        assert enrollment.upn == host.idp_username == "alice@corp.example"
        assert enrollment.enrollment_kind is EnrollmentKind.MANUAL
        # The link works once: another PC with the same link is refused.
        other = MDMOnlyDevice()
        other.discover(client, servername, email="alice@corp.example")
        with pytest.raises(EnrollmentRefused) as refused:
            other.enroll_with_token(client, form.fields["wresult"])
    assert refused.value.fault.subcode == "s:Authentication"


def test_a_tampered_link_is_refused_on_the_page(linked) -> None:
    server, runtime = linked
    link = runtime.deep_links.link("bob@corp.example", preauthorize=True, now=datetime.now(UTC))
    servername = _servername(link)[:-3] + "abc"
    device = MDMOnlyDevice()
    with server.client() as client:
        found = device.discover(client, servername, email="bob@corp.example")
        page = client.get(found.authentication_url + "&" + urlencode({"appru": APPRU}))
    assert page.status_code == 403
    assert "Ask your administrator for a new link" in page.text
    assert forms(page.text, str(page.url)) == []


def test_a_plain_link_names_the_user_and_server(linked) -> None:
    server, runtime = linked
    link = runtime.deep_links.link("carol+it@corp.example", preauthorize=False, now=datetime.now(UTC))
    params = parse_qs(link.split("?", 1)[1])
    assert params["username"] == ["carol+it@corp.example"]
    assert params["servername"] == [server.discovery_url]
    assert "%40" in link and "%3A%2F%2F" in link  # values URL-encoded
