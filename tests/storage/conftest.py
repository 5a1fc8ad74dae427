"""Fixtures of the storage tests (the database_url fixture is tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from winmdm.storage import create_engine_for


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh, unmigrated database: the migration tests take it where they want."""
    engine = create_engine_for(database_url)
    try:
        yield engine
    finally:
        engine.dispose()
