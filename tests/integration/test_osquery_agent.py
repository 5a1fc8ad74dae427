"""The agent channel against the real `winmdm serve` over HTTPS, on SQLite and PostgreSQL: an
osquery (tests/support/osquery_agent.py: TLS 1.2 with osquery's ciphers, its exact bodies)
enrolls with a team's secret, runs an admin's live query, and the MDM enrollment of the same PC
joins its host; the server's log never shows the enroll secret or a node key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.conftest import TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from tests.support.osquery_agent import OsqueryAgent, osquery_tls_context
from tests.support.server import RunningServer, start_server
from winmdm.domain.models import MDMStatus
from winmdm.services.accounts import AdminAccounts
from winmdm.services.bulk import EnrollmentSecrets
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

API = "/api/v1"
ADMIN, PASSWORD = "admin@corp.example", "correct horse battery staple"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def served(tmp_path, entra, database_url) -> Iterator[tuple[RunningServer, SQLStorage]]:
    server = start_server(
        tmp_path / "data",
        {
            "WINMDM_DATABASE_URL": database_url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        },
    )
    engine = create_engine_for(database_url)
    try:
        yield server, SQLStorage(engine)
    finally:
        server.stop()
        engine.dispose()


def test_stock_osquery_over_https_enrolls_queries_and_joins_its_mdm_enrollment(served, entra) -> None:
    server, storage = served
    with storage.transaction() as tx:
        team = tx.teams.create("Laptops", at=now())
    secret = EnrollmentSecrets(storage=storage, clock=now).create(team.id).secret
    AdminAccounts(storage, now).create_admin(ADMIN, PASSWORD, "admin", None)

    agent = OsqueryAgent(enroll_secret=secret + "\n", serial="8HQ2M71")
    with httpx.Client(base_url=server.url, verify=osquery_tls_context(server.dev_ca), timeout=30) as osquery:
        assert agent.enroll(osquery) == {"node_key": agent.node_key, "node_invalid": False}
        assert agent.config(osquery) == {"schedule": {}, "node_invalid": False}
        assert (
            agent.log(osquery, "status", [{"severity": "0", "message": "started"}])["node_invalid"] is False
        )
        with storage.transaction() as tx:
            [host_id] = tx.hosts.list_ids(team_id=team.id, mdm_statuses=[MDMStatus.OFF])

        with server.client() as admin:
            token = admin.post(server.url + API + "/login", json={"email": ADMIN, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {token.json()['token']}"}
            asked = admin.post(
                server.url + API + f"/hosts/{host_id}/queries",
                json={"sql": "SELECT * FROM os_version"},
                headers=headers,
            )
            assert asked.status_code == 202, asked.text
            agent.distributed_round(osquery)
            done = admin.get(
                server.url + API + f"/hosts/{host_id}/queries/{asked.json()['query']['id']}", headers=headers
            )
            assert done.json()["query"]["rows"] == [agent.host_details()["os_version"]]

            # The same PC turns MDM on (Settings, work account); its agent proves the DeviceID.
            device = WindowsDevice(not_in_oobe=True, ux_initiated=True)
            device.enroll(
                admin,
                server.discovery_url,
                email="alice@corp.example",
                token=entra.token(tenant_id=TENANT, audience=server.url),
            )
        managed = ManagedDevice(device, serial=agent.serial)
        with managed.client(server.dev_ca) as client:
            managed.session(client)
            managed.session(client)
        agent.mdm_device_id = device.device_id
        agent.distributed_round(osquery)
        with managed.client(server.dev_ca) as client:
            managed.session(client)
        assert agent.config(osquery)["node_invalid"] is False
        agent.node_key = "not-a-node-key"
        assert agent.config(osquery)["node_invalid"] is True

    with storage.transaction() as tx:
        enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
        host = tx.hosts.get(enrollment.host_id)
        assert host.id == host_id and host.team_id == team.id and host.mdm_status is MDMStatus.ON
    keys = {sent.headers.get("Authorization", "")[len("NodeKey ") :] for sent in agent.sent} - {""}
    log = server.log()
    assert "/api/osquery/enroll" in log and "/api/osquery/distributed/write" in log
    for value in (secret, *keys):
        assert value not in log
