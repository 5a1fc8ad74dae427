"""kill -9 of `winmdm serve` in the middle of management sessions, on SQLite and PostgreSQL:
after the restart every queued command reaches its device and is recorded exactly once.

OMA-DM gives at-least-once delivery: a command whose session died before the device's Status
was stored is sent again in the device's next session (a new session key). What must never
happen is a command lost (left pending or sent for ever) or an answer recorded twice."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.databases import fresh_database_url
from tests.integration.conftest import TENANT
from tests.support.delivery import RecordingDevice, raw_commands_done
from tests.support.device import WindowsDevice
from tests.support.server import start_server
from winmdm.domain.management import CommandKind, CommandState
from winmdm.protocol import syncml
from winmdm.storage import SQLStorage, create_engine_for

DEVICES = 4
COMMANDS = 40


def _queue(storage: SQLStorage, host_id: int, n: int) -> str:
    node = f"./Device/Vendor/MSFT/Test/Crash{n}"
    get = syncml.Get(cmd_id=1, items=(syncml.Item(target=node),))
    command_uuid = str(uuid.uuid4())
    with storage.transaction() as tx:
        command = tx.commands.create(
            CommandKind.RAW, syncml.build_fragment(get).decode(), at=datetime.now(UTC), uuid=command_uuid
        )
        tx.commands.enqueue(command.id, [host_id], datetime.now(UTC))
    return command_uuid


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_mid_session_loses_and_duplicates_nothing(tmp_path, entra, request, kind) -> None:
    postgres = request.getfixturevalue("postgres_server_url") if kind == "postgresql" else None
    with fresh_database_url(kind, tmp_dir=tmp_path, postgres_url=postgres) as url:
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        }
        data_dir = tmp_path / "data"
        server = start_server(data_dir, env)
        port = int(server.url.rsplit(":", 1)[1])
        engine = create_engine_for(url)
        storage = SQLStorage(engine)
        try:
            devices: list[RecordingDevice] = []
            queued: dict[int, list[str]] = {}
            with server.client() as client:
                for _ in range(DEVICES):
                    device = WindowsDevice()
                    device.enroll(
                        client,
                        server.discovery_url,
                        email="alice@corp.example",
                        token=entra.token(tenant_id=TENANT, audience=server.url),
                    )
                    managed = RecordingDevice(device)
                    for n in range(COMMANDS):
                        managed.nodes[f"./Device/Vendor/MSFT/Test/Crash{n}"] = f"value {n}"
                    devices.append(managed)
            for managed in devices:
                with managed.client(server.dev_ca) as client:
                    managed.session(client)  # enrolled, inventoried, On
                with storage.transaction() as tx:
                    host_id = tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id
                queued[host_id] = [_queue(storage, host_id, n) for n in range(COMMANDS)]
            total = DEVICES * COMMANDS
            stop = threading.Event()

            def device_loop(managed: RecordingDevice) -> None:
                while not stop.is_set():
                    try:
                        with managed.client(server.dev_ca) as client:
                            managed.session(client, max_msg_size=1500, max_messages=200)
                    except (httpx.HTTPError, AssertionError, OSError):
                        time.sleep(0.2)  # the server is gone: Windows retries on its schedule
                    time.sleep(0.05)

            threads = [threading.Thread(target=device_loop, args=(m,), daemon=True) for m in devices]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60
            while raw_commands_done(storage) < total // 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.process.kill()  # SIGKILL: no shutdown, no flush, transactions cut off
            server.process.wait()
            killed_at = raw_commands_done(storage)
            assert killed_at < total, "every command was done before the kill: nothing was tested"
            with storage.transaction() as tx:  # sent, not answered: the only ones that may go twice
                in_flight = {
                    (host_id, n)
                    for host_id, uuids in queued.items()
                    for n, command_uuid in enumerate(uuids)
                    if tx.commands.get(host_id, command_uuid).state is CommandState.SENT
                }
            server = start_server(data_dir, env, port=port)
            deadline = time.monotonic() + 120
            while raw_commands_done(storage) < total and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            assert raw_commands_done(storage) == total  # nothing lost
            with storage.transaction() as tx:
                for host_id, uuids in queued.items():
                    for n, command_uuid in enumerate(uuids):
                        done = tx.commands.get(host_id, command_uuid)
                        results = [r for r in done.replies if r.cmd == "Results"]
                        statuses = [r for r in done.replies if r.cmd == "Get"]
                        # Recorded once: one Status and one Results, never a second answer.
                        assert (len(statuses), len(results)) == (1, 1), done
                        assert results[0].items == ((f"./Device/Vendor/MSFT/Test/Crash{n}", f"value {n}"),)
                        assert done.status_code == 200 and done.attempts >= 1
            # Each device carried out each command: more than once only when it was sent again
            # because the session that first carried it died before its Status was stored.
            wanted = {f"./Device/Vendor/MSFT/Test/Crash{n}" for n in range(COMMANDS)}
            for managed in devices:
                with storage.transaction() as tx:
                    host_id = tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id
                assert wanted <= set(managed.executed)
                twice = {
                    int(t.rsplit("Crash", 1)[1]) for t in managed.executed if managed.executed.count(t) > 1
                }
                assert {(host_id, n) for n in twice} <= in_flight
            assert "Traceback" not in server.log()
        finally:
            with contextlib.suppress(Exception):
                server.stop()
            storage.close()
