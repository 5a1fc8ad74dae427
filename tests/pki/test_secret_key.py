"""Data-dir keys: made once, private from the start, refused when damaged."""

from __future__ import annotations

import stat

import pytest

from winmdm.errors import ConfigError
from winmdm.pki.secret_key import load_or_create_secret_key


def test_made_once_private_and_reused(tmp_path) -> None:
    path = tmp_path / "x.key"
    first = load_or_create_secret_key(path, if_lost="nothing")
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret_key(path, if_lost="nothing") == first
    assert [p.name for p in tmp_path.iterdir()] == ["x.key"]  # no file left aside


def test_a_damaged_key_stops_the_start(tmp_path) -> None:
    path = tmp_path / "x.key"
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match=r"holds 5 bytes.*links break") as error:
        load_or_create_secret_key(path, if_lost="links break")
    assert error.value.setting == "WINMDM_DATA_DIR"
