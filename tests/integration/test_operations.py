"""What an operator reads, from a real `winmdm serve`: /metrics scraped over HTTPS after real
enrollments, check-ins and admin work; JSON log lines carrying the ids they are about and never
a secret; /metrics on a listener of its own."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import TENANT
from tests.integration.test_mdm_only_enrollment import APPRU, MDMOnlyDevice
from tests.support.device import EnrollmentRefused, WindowsDevice
from tests.support.oidc import forms
from tests.support.omadm import ManagedDevice
from tests.support.server import RunningServer, free_port, start_server
from winmdm.protocol import syncml
from winmdm.services.accounts import AdminAccounts
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

API = "/api/v1"
METRICS_TOKEN = "scrape-" + secrets.token_hex(16)
ADMIN = "ops@corp.example"
PASSWORD = "correct horse battery staple " + secrets.token_hex(4)
POLICY = "./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart"
PROFILE = (
    f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>{POLICY}</LocURI></Target>"
    '<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>8</Data></Item></Replace>'
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a scrape (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@dataclass
class CountingCreds(ManagedDevice):
    """The emulator, keeping every digest Cred it sends (none may reach the log)."""

    sent: list[str] = field(default_factory=list)

    def _cred(self) -> syncml.Cred:
        cred = super()._cred()
        self.sent.append(str(cred.data))
        return cred


@dataclass
class Secrets:
    """Everything secret the run handed to or got from the server."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, what: str, value: str) -> None:
        assert value and len(value) >= 8, what
        self.values[f"{what} #{len(self.values)}"] = value


@pytest.fixture(scope="module")
def observed(tmp_path_factory, entra) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("operations") / "data"
    server = start_server(
        data_dir,
        {
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
            "WINMDM_LOG_FORMAT": "json",
            "WINMDM_LOG_LEVEL": "debug",  # the most the log ever says
            "WINMDM_METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    engine = create_engine_for(f"sqlite:///{data_dir / 'winmdm.db'}")
    try:
        AdminAccounts(SQLStorage(engine), lambda: datetime.now(UTC)).create_admin(
            ADMIN, PASSWORD, "admin", None
        )
    finally:
        engine.dispose()
    yield server
    server.stop()


def scrape(server: RunningServer) -> str:
    with server.client() as client:
        answer = client.get(server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def test_metrics_need_the_token(observed: RunningServer) -> None:
    with observed.client() as client:
        for headers in (
            {},
            {"Authorization": "Bearer not-the-token-at-all"},
            {"Authorization": METRICS_TOKEN},
        ):
            answer = client.get(observed.url + "/metrics", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert "winmdm_" not in answer.text


def test_a_fleet_day_moves_the_counters_and_the_log_keeps_no_secret(observed, entra) -> None:
    before = scrape(observed)
    found = Secrets()
    found.add("metrics token", METRICS_TOKEN)
    found.add("admin password", PASSWORD)
    with observed.client() as client:
        # An admin mistypes, signs in, makes an API token and works with it.
        wrong = client.post(observed.url + API + "/login", json={"email": ADMIN, "password": "nope" * 4})
        assert wrong.status_code == 401
        session = client.post(observed.url + API + "/login", json={"email": ADMIN, "password": PASSWORD})
        assert session.status_code == 200, session.text
        found.add("session token", session.json()["token"])
        made = client.post(
            observed.url + API + "/api_tokens",
            json={"name": "ops"},
            headers={"Authorization": f"Bearer {session.json()['token']}"},
        )
        assert made.status_code == 201, made.text
        api_token = made.json()["token"]
        found.add("API token", api_token)
        admin = {"Authorization": f"Bearer {api_token}"}
        profile = client.post(
            observed.url + API + "/profiles", json={"name": "Work hours", "syncml": PROFILE}, headers=admin
        )
        assert profile.status_code == 201, profile.text

        # A PC enrolls with an Entra token (Settings, work account).
        device = WindowsDevice()
        entra_token = entra.token(tenant_id=TENANT, audience=observed.url)
        found.add("Entra token", entra_token)
        enrolled = device.enroll(
            client, observed.discovery_url, email="alice@corp.example", token=entra_token
        )
        for app in enrolled.document.find("APPLICATION").all("APPAUTH"):
            found.add(f"DM secret {app.value('AAUTHLEVEL')}", app.value("AAUTHSECRET"))
        host_id = client.get(observed.url + API + "/hosts", headers=admin).json()["hosts"][0]["id"]

        # A pre-authorized deep link enrolls a second PC; its token cannot enroll a third.
        link = client.post(
            observed.url + API + "/enrollment/deep_link",
            json={"username": "bob@corp.example", "preauthorized": True},
            headers=admin,
        )
        assert link.status_code == 200, link.text
        servername = parse_qs(link.json()["url"].split("?", 1)[1])["servername"][0]
        found.add("deep link token", parse_qs(urlsplit(servername).query)["token"][0])
        linked = MDMOnlyDevice()
        discovered = linked.discover(client, servername, email="bob@corp.example")
        page = client.get(discovered.authentication_url + "&" + urlencode({"appru": APPRU}))
        (form,) = forms(page.text, str(page.url))
        found.add("enrollment token", form.fields["wresult"])
        linked.enroll_with_token(client, form.fields["wresult"])
        again = MDMOnlyDevice()
        again.discover(client, servername, email="bob@corp.example")
        with pytest.raises(EnrollmentRefused) as refused:
            again.enroll_with_token(client, form.fields["wresult"])
        assert refused.value.fault.subcode == "s:Authentication"

    # Its first check-in (certificate), then a reboot queued by the admin and a check-in that
    # proves itself by digest alone (a Cred on every message).
    pc = CountingCreds(device)
    with pc.client(observed.dev_ca) as client:
        first = pc.session(client)
    with observed.client() as client:
        reboot = client.post(observed.url + API + f"/hosts/{host_id}/reboot", headers=admin)
        assert reboot.status_code == 202, reboot.text
        second = pc.session(client)
    assert any(isinstance(c, syncml.Exec) for c in second.received)
    for cred in pc.sent:
        found.add("digest Cred", cred)
    messages = len(first.replies) + len(second.replies)

    after = scrape(observed)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("winmdm_enrollments_total", path="work_account", result="success") == 1
    assert moved("winmdm_enrollments_total", path="mdm_only", result="success") == 1
    assert moved("winmdm_enrollments_total", path="mdm_only", result="Authentication") == 1
    assert moved("winmdm_soap_faults_total", code="Authentication") == 1
    assert moved("winmdm_checkins_total", result="answered") == messages
    assert moved("winmdm_login_failures_total", reason="wrong_credentials") == 1
    assert moved("winmdm_commands_queued_total", kind="reboot") == 1
    assert moved("winmdm_commands_queued_total", kind="profile") == 1  # for the PC's first session
    assert moved("winmdm_commands_queued_total", kind="profile_verify") == 1
    assert moved("winmdm_commands_queued_total", kind="inventory") == 1
    assert moved("winmdm_commands_sent_total", kind="reboot") == 1
    assert moved("winmdm_commands_sent_total", kind="inventory") == 1
    assert moved("winmdm_commands_acknowledged_total", kind="reboot", status="200") == 1
    assert moved("winmdm_commands_acknowledged_total", kind="inventory", status="200") == 1
    assert moved("winmdm_commands_acknowledged_total", kind="profile", status="200") == 1
    assert moved("winmdm_syncml_statuses_total", code="200") >= 4  # inventory, Atomic and child, reboot
    assert moved("winmdm_profile_statuses_total", status="pending") == 1
    assert moved("winmdm_profile_statuses_total", status="verified") == 1
    assert moved("winmdm_first_sessions_total") == 1
    # Requests by route template, never by raw path (ids and tokens stay out of the labels).
    endpoint = "/api/v1/hosts/{host_id}/reboot"
    assert moved("winmdm_http_requests_total", endpoint=endpoint, method="POST", status="202") == 1
    assert moved("winmdm_http_request_duration_seconds_count", endpoint=endpoint, method="POST") == 1
    assert moved("winmdm_http_requests_total", endpoint="/ManagementServer/MDM.svc", status="200") == messages
    assert f"/hosts/{host_id}/" not in after and "token=" not in after
    assert moved("winmdm_db_transaction_seconds_count") > messages

    log = observed.log()
    for what, value in found.values.items():
        assert value not in log, f"the log holds the {what}"
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # The deep link's token went by in query strings: the access lines show only its name.
    assert any("token=[redacted]" in line.get("path", "") for line in lines)
    # The enrollment's lines: the service's own, then the access line, which knows the host too.
    enrolled_line = next(line for line in lines if line["message"].startswith("enrolled device "))
    assert enrolled_line["device"] == device.device_id
    rst_line = next(
        line
        for line in lines
        if line.get("path") == "/EnrollmentServer/Enrollment.svc" and line.get("device") == device.device_id
    )
    assert rst_line["activity"] == enrolled_line["activity"]
    assert rst_line["host"] == str(host_id)
    reboot_line = next(
        line for line in lines if line["logger"] == "uvicorn.access" and line["path"].endswith("/reboot")
    )
    assert reboot_line["admin"] == ADMIN
    assert reboot_line["status"] == 202
    checkin = next(line for line in lines if line.get("path", "").startswith("/ManagementServer/MDM.svc"))
    assert checkin["path"] == "/ManagementServer/MDM.svc?mode=Maintenance&Platform=WoA"
    # host and session are bound inside the service, on the management thread: the access
    # line, written on the event loop, still carries them.
    assert (checkin["host"], checkin["device"]) == (str(host_id), device.device_id)
    assert checkin["session"]
    assert any(line.get("device") == device.device_id and line is not enrolled_line for line in lines)


def test_metrics_can_have_a_listener_of_their_own(tmp_path) -> None:
    port = free_port()
    server = start_server(
        tmp_path / "data",
        {"WINMDM_METRICS_LISTEN": f"127.0.0.1:{port}", "WINMDM_METRICS_TOKEN": METRICS_TOKEN},
    )
    try:
        with server.client() as client:
            assert client.get(server.url + "/healthz").text == "ok"
            on_main = client.get(
                server.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
        assert on_main.status_code == 404
        plain = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(plain).status_code == 401
        answer = httpx.get(plain, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status_code == 200
        assert sample(answer.text, "winmdm_http_requests_total", endpoint="/healthz", status="200") == 1
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ).status_code
            == 404
        )
        assert f"127.0.0.1:{port}/metrics (bearer token" in server.log()
    finally:
        server.stop()
