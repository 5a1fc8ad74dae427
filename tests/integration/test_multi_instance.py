"""The README's serve command, and several winmdm processes sharing one PostgreSQL database."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.conftest import TENANT
from tests.support.device import WindowsDevice
from tests.support.server import start_server

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
    from tests.databases import fresh_database_url

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
