"""/healthz says the process answers; /readyz that it can work: the database answers and its
schema is this code's. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.support.seeds import seed_data_dir
from winmdm.config import load_config
from winmdm.runtime import Runtime, build
from winmdm.storage.database import create_engine_for, downgrade, head_revision, migrate
from winmdm.web.app import create_app


@pytest.fixture
def runtime(tmp_path: Path, migrated_database_url: str) -> Iterator[Runtime]:
    config = load_config(
        {
            "WINMDM_DATA_DIR": str(seed_data_dir(tmp_path / "data")),
            "WINMDM_DATABASE_URL": migrated_database_url,
            "WINMDM_SERVER_URL": "https://mdm.test:8443",
        }
    )
    built = build(config, with_tls=False)
    yield built
    built.close()


def test_ready_at_head_and_not_while_the_schema_is_behind(runtime: Runtime) -> None:
    assert runtime.engine is not None
    with TestClient(create_app(runtime)) as client:
        ready = client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready")
        downgrade(runtime.engine, "-1")
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert f"this winmdm needs {head_revision()}" in behind.text
        assert client.get("/healthz").text == "ok"  # alive all the same: no restart wanted
        migrate(runtime.engine)
        assert client.get("/readyz").status_code == 200


def test_not_ready_when_the_database_is_gone(runtime: Runtime, migrated_database_url: str) -> None:
    assert runtime.engine is not None
    url = sa.make_url(migrated_database_url)
    with TestClient(create_app(runtime)) as client:
        assert client.get("/readyz").status_code == 200
        runtime.engine.dispose()
        with _unreachable(url):
            gone = client.get("/readyz")
        assert client.get("/readyz").status_code == 200  # back as soon as the database is
    assert gone.status_code == 503
    assert gone.text == "not ready: the database is unreachable"  # no detail for strangers


@contextmanager
def _unreachable(url: sa.URL) -> Iterator[None]:
    """SQLite: a folder where the file was. PostgreSQL: the database refuses connections."""
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        kept = path.with_suffix(".kept")
        path.rename(kept)
        path.mkdir()
        try:
            yield
        finally:
            path.rmdir()
            kept.rename(path)
        return
    admin = create_engine_for(url.set(database="postgres").render_as_string(hide_password=False))
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS false')
        try:
            yield
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true')
    finally:
        admin.dispose()
