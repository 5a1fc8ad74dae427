"""The storage contract for a host's Entra device id (revision 0005): recorded at enrollment,
found again by the Entra terms page, one host at a time, kept by merges. Every test runs on
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.storage.test_contract import T0, new_host
from winmdm.domain.identity import entra_device_id
from winmdm.domain.models import MDMStatus
from winmdm.storage.sql import SQLStorage

ENTRA_1 = "2f6a4c1e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
ENTRA_2 = "7d8e9f00-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
T1 = T0 + timedelta(days=1)


def _record(tx, host_id: int, **changes):
    values = {
        "display_name": "DESKTOP-ALICE",
        "hw_dev_id": None,
        "device_id": None,
        "os_version": None,
        "os_edition": None,
        "idp_username": None,
        "mdm_status": MDMStatus.PENDING,
        "at": T1,
    }
    return tx.hosts.record_enrollment(host_id, **(values | changes))


def test_a_host_created_with_an_entra_device_id_is_found_by_it(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host(entra_device_id=ENTRA_1))
        other = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2"))
    assert host.entra_device_id == ENTRA_1 and other.entra_device_id is None
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id) == host
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) == host
        assert tx.hosts.find_by_entra_device_id(ENTRA_2) is None
        # Compared exactly: callers normalise (domain.identity.entra_device_id).
        assert tx.hosts.find_by_entra_device_id(ENTRA_1.upper()) is None


@pytest.mark.parametrize("nothing", [None, ""])
def test_no_entra_device_id_never_matches(storage: SQLStorage, nothing: str | None) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host(entra_device_id=nothing))
        tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2", entra_device_id=None))
    assert host.entra_device_id is None  # an empty id is stored as NULL
    with storage.transaction() as tx:
        assert tx.hosts.find_by_entra_device_id(nothing) is None


def test_record_enrollment_sets_refreshes_and_keeps_the_entra_device_id(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        host = tx.hosts.create(new_host(team_id=team.id))
    with storage.transaction() as tx:
        first = _record(tx, host.id, entra_device_id=ENTRA_1)
    assert first.entra_device_id == ENTRA_1 and first.team_id == team.id
    with storage.transaction() as tx:
        # An enrollment without one (Group Policy with a device token, the sign-in page) keeps it.
        assert _record(tx, host.id).entra_device_id == ENTRA_1
        assert _record(tx, host.id, entra_device_id="").entra_device_id == ENTRA_1
        assert tx.hosts.find_by_entra_device_id(ENTRA_1).id == host.id
    with storage.transaction() as tx:
        # A later Entra enrollment (the PC joined Entra again) refreshes it.
        refreshed = _record(tx, host.id, entra_device_id=ENTRA_2)
    assert refreshed == replace(first, entra_device_id=ENTRA_2)
    with storage.transaction() as tx:
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) is None
        assert tx.hosts.find_by_entra_device_id(ENTRA_2) == refreshed


def test_an_entra_device_id_names_one_host_at_a_time(storage: SQLStorage) -> None:
    """The id moves to the host that recorded it last, by create or by record_enrollment."""
    with storage.transaction() as tx:
        old = tx.hosts.create(new_host(uuid="u-old", entra_device_id=ENTRA_1))
        new = tx.hosts.create(
            new_host(
                uuid="u-new", hw_dev_id="HW-2", device_id="DEV-2", entra_device_id=ENTRA_1, created_at=T1
            )
        )
        assert tx.hosts.get(old.id).entra_device_id is None
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) == new
    with storage.transaction() as tx:
        back = _record(tx, old.id, entra_device_id=ENTRA_1)
    with storage.transaction() as tx:
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) == back
        assert tx.hosts.get(new.id).entra_device_id is None
        assert tx.hosts.get(new.id).updated_at == new.updated_at  # nothing else of it changed


def test_merge_into_keeps_the_newer_entra_device_id(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        target = tx.hosts.create(new_host(uuid="u-old", entra_device_id=ENTRA_1))
        source = tx.hosts.create(
            new_host(uuid="u-new", hw_dev_id="HW-2", device_id="DEV-2", entra_device_id=ENTRA_2)
        )
        quiet = tx.hosts.create(new_host(uuid="u-quiet", hw_dev_id="HW-3", device_id="DEV-3"))
        tx.hosts.merge_into(source.id, target.id, T1)
        # A source that knew none leaves the target's.
        tx.hosts.merge_into(quiet.id, target.id, T1)
    with storage.transaction() as tx:
        merged = tx.hosts.get(target.id)
        assert merged.entra_device_id == ENTRA_2
        assert tx.hosts.find_by_entra_device_id(ENTRA_2) == merged
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) is None


def test_the_entra_device_id_rolls_back_with_its_transaction(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host(entra_device_id=ENTRA_1))
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2", entra_device_id=ENTRA_1))
        raise RuntimeError("the enrollment failed afterwards")
    with storage.transaction() as tx:
        assert tx.hosts.find_by_entra_device_id(ENTRA_1) == host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ENTRA_1, ENTRA_1),
        (ENTRA_1.upper(), ENTRA_1),
        ("{" + ENTRA_1 + "}", ENTRA_1),
        (f"  {ENTRA_1} ", ENTRA_1),
        ("device-42", "device-42"),
        (None, None),
        ("", None),
        ("   ", None),
        ("x" * 129, None),
        ("line\nbreak", None),
        (42, None),
    ],
)
def test_entra_device_ids_are_normalised(value: object, expected: str | None) -> None:
    assert entra_device_id(value) == expected
