"""Fixtures for the Entra tests: a real local issuer over HTTP and a clock."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# `tests.support` and `tests.idp` are imported by package name; the pytest script does not put
# the repository root on sys.path by itself.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.entra_issuer import EntraIssuer  # noqa: E402
from winmdm.idp import JWKSCache  # noqa: E402


@pytest.fixture(scope="session")
def shared_issuer() -> Iterator[EntraIssuer]:
    """One issuer for tests that never rotate keys, count requests or stop it (keygen costs)."""
    with EntraIssuer() as idp:
        yield idp


@pytest.fixture
def issuer() -> Iterator[EntraIssuer]:
    """A fresh issuer, for tests that rotate keys, count requests or stop the server."""
    with EntraIssuer() as idp:
        yield idp


@pytest.fixture
def shared_cache(shared_issuer: EntraIssuer) -> Iterator[JWKSCache]:
    with JWKSCache(shared_issuer.jwks_url) as cache:
        yield cache


@pytest.fixture
def now() -> datetime:
    """The verification time; tokens are issued relative to it."""
    return datetime.now(UTC).replace(microsecond=0)
