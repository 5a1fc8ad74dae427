"""The README's serve command, and several winmdm processes sharing one PostgreSQL database:
enrollment and renewal on either, OMA-DM sessions whose messages alternate between them."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.databases import fresh_database_url
from tests.integration.conftest import TENANT
from tests.support.delivery import RecordingDevice, raw_commands_done
from tests.support.device import WindowsDevice
from tests.support.omadm import SessionLog
from tests.support.server import start_server
from winmdm.domain.management import CommandState
from winmdm.protocol import syncml
from winmdm.services.commands import CommandService
from winmdm.storage import SQLStorage, create_engine_for

REPO = Path(__file__).resolve().parents[2]


def test_readme_serve_command_gives_a_server_devices_enroll_into(tmp_path, entra) -> None:
    readme = (REPO / "README.md").read_text()
    assert "./scripts/serve" in readme
    server = start_server(
        tmp_path / "data",
        {"WINMDM_ENTRA_TENANT_IDS": TENANT, "WINMDM_ENTRA_JWKS_URL": entra.jwks_url},
        command=[str(REPO / "scripts" / "serve")],
    )
    try:
        with server.client() as client:
            enrolled = WindowsDevice().enroll(
                client,
                server.discovery_url,
                email="alice@corp.example",
                token=entra.token(tenant_id=TENANT, audience=server.url),
            )
        assert enrolled.management_url == server.url + "/ManagementServer/MDM.svc"
        assert (tmp_path / "data" / "winmdm.db").is_file()
    finally:
        server.stop()


def test_two_processes_share_postgresql(tmp_path, entra, postgres_server_url) -> None:
    with fresh_database_url("postgresql", tmp_dir=tmp_path, postgres_url=postgres_server_url) as url:
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        }
        first = start_server(tmp_path / "a" / "data", env)
        try:
            # A second instance shares the database, the device CA, keys and TLS files (copied, as
            # an admin deploying several instances behind one load balancer would).
            second_dir = tmp_path / "b" / "data"
            second_dir.mkdir(parents=True)
            for name in ("device-ca.key", "device-ca.crt", "agent-download.key", "enrollment-token.key"):
                shutil.copy2(first.data_dir / name, second_dir / name)
            shutil.copytree(first.data_dir / "tls", second_dir / "tls")
            second = start_server(second_dir, env)
            try:
                device = WindowsDevice()
                with first.client() as client:
                    first_cert = device.enroll(
                        client,
                        first.discovery_url,
                        email="alice@corp.example",
                        token=entra.token(tenant_id=TENANT, audience=first.url),
                    ).certificate
                # The load balancer sends the renewal to the other instance.
                assert device.enrolled is not None
                device.enrolled.enrollment_url = device.enrolled.enrollment_url.replace(first.url, second.url)
                with second.client() as client:
                    renewed = device.renew(client)
                assert renewed.issuer == first_cert.issuer
                assert renewed.serial_number != first_cert.serial_number
            finally:
                second.stop()
        finally:
            first.stop()


class RoundRobin:
    """The devices' side of a load balancer without affinity: each request goes to the next
    server in turn, so one session's messages alternate between instances.

    Every instance announces the same public URL (the first server's), as instances behind one
    load balancer announce its URL; the request is sent to the chosen instance's own port."""

    def __init__(self, public_url: str, routes: list[tuple[str, httpx.Client]], start: int = 0) -> None:
        self.public_url = public_url
        self.routes = routes
        self.turn = start
        self.sent = [0] * len(routes)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        index = self.turn % len(self.routes)
        self.turn += 1
        self.sent[index] += 1
        base, client = self.routes[index]
        assert url.startswith(self.public_url), url
        return client.post(base + url[len(self.public_url) :], **kwargs)

    def close(self) -> None:
        for _, client in self.routes:
            client.close()


def _get(n: int) -> str:
    return syncml.build_fragment(
        syncml.Get(cmd_id=1, items=(syncml.Item(target=f"./Device/Vendor/MSFT/Test/Multi{n}"),))
    ).decode()


def test_two_instances_take_turns_within_sessions_and_deliver_each_command_once(
    tmp_path, entra, postgres_server_url
) -> None:
    """Issue 13: any instance may take any message of a session (the session lives in the
    database), and a command queued once is sent once and its answer recorded once, whichever
    instance sends it and whichever takes the answer."""
    devices_count, waves, per_wave = 4, 3, 5
    with fresh_database_url(
        "postgresql", tmp_dir=tmp_path, postgres_url=postgres_server_url, migrated=True
    ) as url:
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        }
        data_dir = tmp_path / "data"  # one data folder (CA, keys, TLS) for both, as on one host
        first = start_server(data_dir, env)
        second = None
        storage = SQLStorage(create_engine_for(url))
        routers: list[RoundRobin] = []
        try:
            second = start_server(data_dir, {**env, "WINMDM_SERVER_URL": first.url})
            service = CommandService(storage=storage, clock=lambda: datetime.now(UTC))
            devices: list[RecordingDevice] = []
            with first.client() as client:
                for _ in range(devices_count):
                    device = WindowsDevice()
                    device.enroll(
                        client,
                        first.discovery_url,
                        email="alice@corp.example",
                        token=entra.token(tenant_id=TENANT, audience=first.url),
                    )
                    managed = RecordingDevice(device)
                    managed.nodes.update(
                        {f"./Device/Vendor/MSFT/Test/Multi{n}": f"value {n}" for n in range(waves * per_wave)}
                    )
                    devices.append(managed)
            with storage.transaction() as tx:
                host_ids = [
                    tx.enrollments.find_active_by_device_id(m.device.device_id).host_id for m in devices
                ]
            for n, managed in enumerate(devices):
                routes = [(s.url, managed.client(s.dev_ca)) for s in (first, second)]
                routers.append(RoundRobin(first.url, routes, start=n))
            # The first wave is queued before any session: the first (inventory) sessions carry it.
            queued = [
                service.run_syncml(host_ids, _get(n), actor="admin@corp.example") for n in range(per_wave)
            ]
            logs: list[SessionLog] = []
            failures: list[BaseException] = []
            stop = threading.Event()

            def device_loop(managed: RecordingDevice, router: RoundRobin) -> None:
                try:
                    while not stop.is_set():
                        logs.append(managed.session(router, max_msg_size=1200, max_messages=100))
                        time.sleep(0.02)
                except BaseException as exc:  # reported by the test thread
                    failures.append(exc)

            threads = [
                threading.Thread(target=device_loop, args=pair, daemon=True)
                for pair in zip(devices, routers, strict=True)
            ]
            for thread in threads:
                thread.start()
            # Later waves while the devices keep checking in, each once the one before is done:
            # the later sessions carry them, starting on either instance.
            deadline = time.monotonic() + 90
            for wave in range(1, waves + 1):
                done = len(queued) * devices_count
                while raw_commands_done(storage) < done and time.monotonic() < deadline and not failures:
                    time.sleep(0.05)
                if wave < waves:
                    queued += [
                        service.run_syncml(host_ids, _get(n), actor="admin@corp.example")
                        for n in range(wave * per_wave, (wave + 1) * per_wave)
                    ]
            total = len(queued) * devices_count
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            assert not failures, failures[0]
            assert raw_commands_done(storage) == total
            for managed, router in zip(devices, routers, strict=True):
                # Nothing left for the device: an idle session, on either instance.
                idle = managed.session(router)
                assert not idle.received, idle.received
                assert all(router.sent), f"one instance took no message: {router.sent}"

            # Sessions of several messages did happen, so instances took turns within them.
            assert sum(len(log.replies) > 2 for log in logs) >= devices_count, [len(x.replies) for x in logs]
            for log in logs:  # no SyncML error from either instance
                assert set(log.header_codes) <= {200, 212}, log.header_codes
                statuses = [c for m in log.replies for c in m.commands if isinstance(c, syncml.Status)]
                assert all(int(s.data) < 300 for s in statuses), [(s.cmd, s.data) for s in statuses]
            with storage.transaction() as tx:
                for command in queued:
                    for host_id in host_ids:
                        done = tx.commands.get(host_id, command.uuid)
                        assert done.state is CommandState.DONE and done.status_code == 200
                        assert done.attempts == 1, done  # sent once
                        statuses = [r for r in done.replies if r.cmd == "Get"]
                        results = [r for r in done.replies if r.cmd == "Results"]
                        assert (len(statuses), len(results)) == (1, 1), done  # answered once
            wanted = [f"./Device/Vendor/MSFT/Test/Multi{n}" for n in range(waves * per_wave)]
            for managed in devices:  # carried out once each, by the device itself
                assert sorted(t for t in managed.executed if "/Test/" in t) == sorted(wanted)
            for server in (first, second):
                assert "Traceback" not in server.log()
        finally:
            for router in routers:
                router.close()
            for server in (first, second):
                if server is not None:
                    server.stop()
            storage.close()
