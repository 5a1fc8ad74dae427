"""Bulk enrollment over real HTTPS: the CLI writes a package for a team, and a PC applying it
enrolls with the package's UPN and secret into that team as On (automatic)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

from lxml import etree

from tests.support.bulk import enroll_with_package
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from tests.support.server import winmdm_command
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.models import MDMStatus
from winmdm.services.accounts import AdminAccounts
from winmdm.storage.database import create_engine_for
from winmdm.storage.sql import SQLStorage

NS = {"w": "urn:schemas-microsoft-com:windows-provisioning"}


def test_a_cli_made_package_enrolls_a_pc_into_its_team(server, tmp_path) -> None:
    engine = create_engine_for(f"sqlite:///{server.data_dir / 'winmdm.db'}")
    storage = SQLStorage(engine)
    try:
        with storage.transaction() as tx:
            team = tx.teams.create("Kiosks", at=datetime.now(UTC))
        # An admin signs in to the server's API; the package is written on their computer.
        AdminAccounts(storage, lambda: datetime.now(UTC)).create_admin(
            "admin@example.com", "correct horse battery staple", "admin", None
        )
        env = {k: v for k, v in server.env.items() if not k.startswith("WINMDM_")}
        env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), WINMDM_CA_FILE=str(server.dev_ca))
        package = tmp_path / "kiosks.xml"
        for args in (
            ["login", "--server", server.url, "--email", "admin@example.com"],
            ["bulk-package", "--team", "Kiosks", "--out", str(package)],
        ):
            done = subprocess.run(
                [*winmdm_command(), *args],
                env={**env, "WINMDM_PASSWORD": "correct horse battery staple"},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        upn = etree.parse(str(package)).find(".//w:Enrollments/w:UPN", NS)
        assert upn.findtext("w:DiscoveryServiceFullUrl", namespaces=NS) == server.discovery_url
        device = WindowsDevice(ux_initiated=False, not_in_oobe=True)
        with server.client() as client:
            enroll_with_package(
                client, device, upn.get("UPN"), upn.findtext("w:Secret", namespaces=NS), server.discovery_url
            )
        managed = ManagedDevice(device)
        with managed.client(server.dev_ca) as client:
            managed.session(client)
        with storage.transaction() as tx:
            enrollment = tx.enrollments.find_active_by_device_id(device.device_id)
            host = tx.hosts.get(enrollment.host_id)
        assert host.team_id == team.id
        assert host.enrollment_kind is EnrollmentKind.AUTOMATIC and host.mdm_status is MDMStatus.ON
    finally:
        engine.dispose()
