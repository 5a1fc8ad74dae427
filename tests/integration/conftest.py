from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.entra_issuer import EntraIssuer
from tests.support.server import RunningServer, start_server

TENANT = str(uuid.UUID("8d1d5a3c-6f7e-4b1a-9c2d-3e4f5a6b7c8d"))


@pytest.fixture(scope="module")
def entra() -> Iterator[EntraIssuer]:
    with EntraIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, entra: EntraIssuer) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("server") / "data"
    running = start_server(
        data_dir,
        {
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        },
    )
    yield running
    running.stop()


@pytest.fixture
def token(entra: EntraIssuer, server: RunningServer):
    def make(**kwargs) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        kwargs.setdefault("audience", server.url)
        return entra.token(**kwargs)

    return make
