"""A device's managed life over real HTTPS with its client certificate, against `winmdm serve`:
profiles delivered, failed and verified; the agent MSI downloaded and its install reported;
large objects chunked both ways. Admin work is done through the services on the server's own
database, as the API will (the server picks it up from storage in its sessions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.management import AgentStatus, CommandState, ProfileStatus
from winmdm.protocol import syncml
from winmdm.protocol.csp import msi
from winmdm.protocol.syncml import StatusCode
from winmdm.services.agent import AgentService, load_or_create_key
from winmdm.services.commands import CommandService
from winmdm.services.profiles import ProfileService
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

PRODUCT = "{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}"
MSI_BYTES = bytes.fromhex("D0CF11E0A1B11AE1") + b"winmdm test agent" * 500
POLICY = "./Device/Vendor/MSFT/Policy/Config"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WindowsPC(ManagedDevice):
    """The emulator with the MSI CSP: Exec of DownloadInstall downloads ContentURL over HTTPS,
    checks FileHash, installs, and reports the result with a 1226 alert in the next session."""

    downloads: list[bytes] = field(default_factory=list)
    alerts: list[syncml.Alert] = field(default_factory=list)
    http: object = None

    def _execute(self, command, msg_ref, next_id):
        if isinstance(command, syncml.Exec) and (command.items[0].target or "").endswith("/DownloadInstall"):
            job = msi.parse_job(command.items[0].data)
            body = self.http.get(job.content_urls[0]).content
            self.downloads.append(body)
            ok = hashlib.sha256(body).hexdigest().upper() == job.file_hash.upper()
            self.alerts.append(
                syncml.Alert(
                    cmd_id=9,
                    data=1226,
                    items=(
                        syncml.Item(
                            source=f"./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/{PRODUCT}/DownloadInstall",
                            meta=syncml.Meta(type=msi.INSTALL_ALERT_TYPE, format="int", mark="informational"),
                            data="0" if ok else "-2147024891",
                        ),
                    ),
                )
            )
            return [
                syncml.command_status(command, StatusCode.ACCEPTED, cmd_id=next(next_id), msg_ref=msg_ref)
            ]
        return super()._execute(command, msg_ref, next_id)


@pytest.fixture(scope="module")
def admin(server):
    engine = create_engine_for(f"sqlite:///{server.data_dir / 'winmdm.db'}")
    storage = SQLStorage(engine)
    key = load_or_create_key(server.data_dir)
    yield {
        "storage": storage,
        "profiles": ProfileService(storage, now),
        "agent": AgentService(storage, now, key, server.url),
        "commands": CommandService(storage=storage, clock=now),
    }
    engine.dispose()


def test_a_device_lives_through_profiles_agent_and_large_objects(server, token, admin) -> None:
    big = "x" * 9000
    admin["profiles"].add_profile(
        None,
        "Work hours",
        f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>{POLICY}/Update/ActiveHoursStart</LocURI></Target>"
        '<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>8</Data></Item></Replace>'
        f"<Replace><CmdID>2</CmdID><Item><Target><LocURI>{POLICY}/Update/ActiveHoursEnd</LocURI></Target>"
        '<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>17</Data></Item></Replace>',
        actor="admin@corp.example",
    )
    admin["profiles"].add_profile(
        None,
        "Unsupported",
        f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>{POLICY}/Nope/Setting</LocURI></Target>"
        '<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>1</Data></Item></Replace>',
        actor="admin@corp.example",
    )
    admin["agent"].set_package(PRODUCT, "1.2.3", "/quiet", content=MSI_BYTES, actor="admin@corp.example")

    device = WindowsDevice()
    with server.client() as client:
        device.enroll(client, server.discovery_url, email="alice@corp.example", token=token())
    pc = WindowsPC(device)
    pc.answers[f"{POLICY}/Nope/Setting"] = StatusCode.NOT_FOUND
    pc.nodes["./Device/Vendor/MSFT/Test/Log"] = "entry;" * 3000
    pc.max_chunk = 4000
    with pc.client(server.dev_ca) as client:
        pc.http = client
        pc.session(client)  # inventory, both profiles, the MSI job (downloaded over HTTPS)
        assert pc.downloads == [MSI_BYTES]
        with admin["storage"].transaction() as tx:
            host_id = tx.enrollments.find_active_by_device_id(device.device_id).host_id
        banner = admin["commands"].run_syncml(
            [host_id],
            f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>{POLICY}/Custom/Banner</LocURI></Target>"
            f'<Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>{big}</Data></Item></Replace>',
            actor="admin@corp.example",
        )
        log_get = admin["commands"].run_syncml(
            [host_id],
            "<Get><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Test/Log</LocURI></Target></Item></Get>",
            actor="admin@corp.example",
        )
        # The install result is reported; a large command goes out and a large result comes in.
        second = pc.session(client, max_msg_size=6000, extra=tuple(pc.alerts))
        for reply in second.replies:
            assert len(syncml.build_message(reply)) <= 6000
    assert pc.chunks_received >= 1
    assert pc.nodes[f"{POLICY}/Custom/Banner"] == big
    assert admin["commands"].result(host_id, banner.uuid).status_code == 200
    statuses = {p.profile_id: p for p in admin["profiles"].host_profiles(host_id)}
    by_name = {p.name: p.id for p in admin["profiles"].list_profiles(None)}
    assert statuses[by_name["Work hours"]].status is ProfileStatus.VERIFIED
    failed = statuses[by_name["Unsupported"]]
    assert failed.status is ProfileStatus.FAILED
    assert f"{POLICY}/Nope/Setting: 404 not found" in failed.detail
    agent = admin["agent"].host_status(host_id)
    assert agent.status is AgentStatus.INSTALLED
    result = admin["commands"].result(host_id, log_get.uuid)
    assert result.state is CommandState.DONE
    assert [r.items for r in result.replies if r.cmd == "Results"] == [
        (("./Device/Vendor/MSFT/Test/Log", "entry;" * 3000),)
    ]
