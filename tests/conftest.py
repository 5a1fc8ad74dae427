"""Database fixtures shared by the whole test suite.

Every storage-backed test runs on SQLite and on PostgreSQL. PostgreSQL is required, never
skipped (design.md §3): `WINMDM_TEST_POSTGRES_URL` when set, else a throwaway server from
`pgserver`; when neither works the tests fail and say why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from winmdm.storage import SQLStorage, create_engine_for

try:  # tests/ is a package in some layouts of this suite, a rootdir folder in others.
    from tests.databases import (
        KINDS,
        POSTGRES_URL_ENV,
        PostgresUnavailable,
        check_postgres,
        fresh_database_url,
        start_pgserver,
    )
except ModuleNotFoundError:
    from databases import (  # type: ignore[no-redef]
        KINDS,
        POSTGRES_URL_ENV,
        PostgresUnavailable,
        check_postgres,
        fresh_database_url,
        start_pgserver,
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create and drop databases on."""
    url = os.environ.get(POSTGRES_URL_ENV)
    server = None
    try:
        if not url:
            url, server = start_pgserver()
        check_postgres(url)
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is required for the tests and is not available: {exc}", pytrace=False)
    try:
        yield url
    finally:
        if server is not None:
            server.cleanup()


@pytest.fixture(params=KINDS)
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database per test, on each backend in turn."""
    postgres_url = None
    if database_kind == "postgresql":
        # Asked for lazily so SQLite-only runs (-k sqlite) never start PostgreSQL.
        postgres_url = request.getfixturevalue("postgres_server_url")
    with fresh_database_url(database_kind, tmp_dir=tmp_path, postgres_url=postgres_url) as url:
        yield url


@pytest.fixture
def migrated_database_url(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh database at the newest schema (a copy of one migrated once), on each backend."""
    postgres_url = None
    if database_kind == "postgresql":
        postgres_url = request.getfixturevalue("postgres_server_url")
    with fresh_database_url(database_kind, tmp_dir=tmp_path, postgres_url=postgres_url, migrated=True) as url:
        yield url


@pytest.fixture
def storage(migrated_database_url: str) -> Iterator[SQLStorage]:
    """A migrated SQLStorage on a fresh database."""
    engine = create_engine_for(migrated_database_url)
    store = SQLStorage(engine)
    try:
        yield store
    finally:
        store.close()
