"""Fixtures for the pki tests: a fixed clock and one device CA per session (RSA 3072 is slow)."""

from __future__ import annotations

from datetime import datetime

import pytest
from pki_builders import NOW

from winmdm.pki.ca import DeviceCA


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def device_ca() -> DeviceCA:
    return DeviceCA.generate("winmdm test device CA", NOW)


@pytest.fixture(scope="session")
def foreign_ca() -> DeviceCA:
    """Another CA with the same name: issued_by_me must check the signature, not the name."""
    return DeviceCA.generate("winmdm test device CA", NOW)
