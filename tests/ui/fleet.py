"""The hosts the UI tests look at, put into a running server the way Windows does it: the device
emulator enrolls over HTTPS (Entra tokens; one through the terms page with end-user
authentication) and checks in with its certificate. Admin set-up goes through the services on
the server's database, as an admin's API calls would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tests.integration.test_entra_end_user_auth import TermsDevice, accept_terms
from tests.support.device import WindowsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.support.omadm import ManagedDevice
from winmdm.domain.fleet import HostFilter
from winmdm.protocol import syncml
from winmdm.protocol.csp import msi
from winmdm.protocol.syncml import StatusCode
from winmdm.services.agent import AgentService, load_or_create_key
from winmdm.services.hosts import HostService
from winmdm.services.profiles import ProfileService
from winmdm.services.teams import TeamService

if TYPE_CHECKING:
    from tests.ui.conftest import UIServer

PRODUCT = "{6A3C5B1E-2D4F-4A8B-9C7D-1E2F3A4B5C6D}"
MSI_BYTES = bytes.fromhex("D0CF11E0A1B11AE1") + b"winmdm test agent" * 200
POLICY = "./Device/Vendor/MSFT/Policy/Config"
SETUP = "setup@corp.example"
UNENROLL_ALERT = "com.microsoft:mdm.unenrollment.userrequest"


def now() -> datetime:
    return datetime.now(UTC)


def replace_profile(uri: str, value: str) -> str:
    return (
        f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>{uri}</LocURI></Target>"
        f'<Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>{value}</Data></Item></Replace>'
    )


@dataclass
class AgentPC(ManagedDevice):
    """The emulator with the MSI CSP: DownloadInstall downloads the MSI over HTTPS, checks its
    hash and reports the result in the next session (Alert 1226)."""

    http: object = None
    alerts: list[syncml.Alert] = field(default_factory=list)

    def _execute(self, command, msg_ref, next_id):
        if isinstance(command, syncml.Exec) and (command.items[0].target or "").endswith("/DownloadInstall"):
            job = msi.parse_job(command.items[0].data)
            body = self.http.get(job.content_urls[0]).content
            ok = hashlib.sha256(body).hexdigest().upper() == job.file_hash.upper()
            source = f"./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/{PRODUCT}/DownloadInstall"
            meta = syncml.Meta(type=msi.INSTALL_ALERT_TYPE, format="int", mark="informational")
            data = "0" if ok else "-2147024891"
            self.alerts.append(
                syncml.Alert(cmd_id=9, data=1226, items=(syncml.Item(source=source, meta=meta, data=data),))
            )
            return [
                syncml.command_status(command, StatusCode.ACCEPTED, cmd_id=next(next_id), msg_ref=msg_ref)
            ]
        return super()._execute(command, msg_ref, next_id)


@dataclass
class Fleet:
    """Host ids by role in the tests."""

    manual: int  # On (manual), No team, both IdP usernames, a failed and a verified profile
    manual_in_team: int  # On (manual), in team Engineering
    automatic: int  # On (automatic), OOBE / Autopilot
    pending: int  # enrolled, no management session yet
    off: int  # turned MDM off itself
    team_id: int
    names: dict[int, str]


def _enroll(ui: UIServer, device: WindowsDevice, token: str, email: str) -> None:
    with ui.server.client() as client:
        device.enroll(client, ui.server.discovery_url, email=email, token=token)


def _host_id(ui: UIServer, device: WindowsDevice) -> int:
    with ui.storage.transaction() as tx:
        return tx.enrollments.find_active_by_device_id(device.device_id).host_id


def build_fleet(ui: UIServer, entra: EntraIssuer, tenant: str) -> Fleet:
    server = ui.server
    storage = ui.storage
    profiles = ProfileService(storage, now)
    profiles.add_profile(
        None, "Work hours", replace_profile(f"{POLICY}/Update/ActiveHoursStart", "8"), actor=SETUP
    )
    profiles.add_profile(
        None, "Unsupported setting", replace_profile(f"{POLICY}/Nope/Setting", "1"), actor=SETUP
    )
    AgentService(storage, now, load_or_create_key(server.data_dir), server.url).set_package(
        PRODUCT, "1.2.3", "/quiet", content=MSI_BYTES, actor=SETUP
    )

    def token(upn: str) -> str:
        return entra.token(tenant_id=tenant, audience=server.url, upn=upn)

    # On (manual): Settings > Access work or school > Connect, after the terms page with
    # end-user authentication (the IdP user is bob, the Entra user alice).
    with server.client() as browser:
        _, blob = accept_terms(browser, server, token("alice@corp.example"), "bob@corp.example")
    alice = TermsDevice(
        enrollment_data=blob, device_name="DESKTOP-ALICE", not_in_oobe=True, ux_initiated=True
    )
    _enroll(ui, alice, token("alice@corp.example"), "alice@corp.example")
    alice_pc = AgentPC(alice, serial="SN-ALICE-0001")
    alice_pc.answers[f"{POLICY}/Nope/Setting"] = StatusCode.NOT_FOUND
    with alice_pc.client(server.dev_ca) as client:
        alice_pc.http = client
        alice_pc.session(client)
        alice_pc.session(client, extra=tuple(alice_pc.alerts))

    # On (manual), then moved to a team.
    erin = WindowsDevice(device_name="DESKTOP-ERIN", not_in_oobe=True, ux_initiated=True)
    _enroll(ui, erin, token("erin@corp.example"), "erin@corp.example")
    erin_pc = ManagedDevice(erin, serial="SN-ERIN-0002")
    with erin_pc.client(server.dev_ca) as client:
        erin_pc.session(client)

    # On (automatic): OOBE / Autopilot Entra join.
    carol = WindowsDevice(
        device_name="AUTOPILOT-CAROL", enrollment_type="Device", not_in_oobe=False, ux_initiated=False
    )
    _enroll(ui, carol, token("carol@corp.example"), "carol@corp.example")
    carol_pc = ManagedDevice(carol, serial="SN-CAROL-0003")
    with carol_pc.client(server.dev_ca) as client:
        carol_pc.session(client)

    # Pending: enrolled, first management session not yet.
    dave = WindowsDevice(device_name="DESKTOP-DAVE", not_in_oobe=True, ux_initiated=True)
    _enroll(ui, dave, token("dave@corp.example"), "dave@corp.example")

    # Off: the user turned MDM off in Settings.
    frank = WindowsDevice(device_name="DESKTOP-FRANK", not_in_oobe=True, ux_initiated=True)
    _enroll(ui, frank, token("frank@corp.example"), "frank@corp.example")
    frank_pc = ManagedDevice(frank, serial="SN-FRANK-0005")
    unenroll = syncml.Alert(
        cmd_id=4,
        data=1226,
        items=(syncml.Item(meta=syncml.Meta(type=UNENROLL_ALERT, format="int"), data="1"),),
    )
    with frank_pc.client(server.dev_ca) as client:
        frank_pc.session(client)
        frank_pc.session(client, extra=(unenroll,))

    team = TeamService(storage, now).create("Engineering", actor=SETUP)
    hosts = HostService(storage, now)
    ids = {
        name: _host_id(ui, device) for name, device in (("alice", alice), ("erin", erin), ("carol", carol))
    }
    ids |= {"dave": _host_id(ui, dave)}
    with storage.transaction() as tx:
        frank_host = tx.hosts.find_known(hw_dev_id=frank.hw_dev_id, device_id=frank.device_id)
    ids["frank"] = frank_host.id
    hosts.transfer(team.id, [ids["erin"]], actor=SETUP)
    names = {h.id: h.display_name for h in hosts.list(HostFilter(per_page=500)).items}
    return Fleet(
        manual=ids["alice"],
        manual_in_team=ids["erin"],
        automatic=ids["carol"],
        pending=ids["dave"],
        off=ids["frank"],
        team_id=team.id,
        names=names,
    )
