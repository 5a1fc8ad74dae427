"""Whose end-user authentication the Entra terms page follows (services/end_user_auth.py): a PC
winmdm knows by its Entra device id follows its team, any other PC No team; never without an
identity provider. Over SQLite and PostgreSQL, with devices enrolled through the real service."""

from __future__ import annotations

import functools
import uuid

import pytest

from tests.services.conftest import turned_off
from tests.services.test_enrollment import _rst_for
from tests.support.device import WindowsDevice
from winmdm.services.end_user_auth import end_user_auth_required
from winmdm.services.license import FREE
from winmdm.services.settings import SettingsService

ENTRA_DEVICE = "2f6a4c1e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
STRANGER = "7d8e9f00-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


def rule(storage, clock, *, no_team: bool, sign_in_configured: bool = True):
    settings = SettingsService(
        storage, clock, FREE, end_user_authentication_default=no_team, sign_in_configured=True
    )
    return functools.partial(
        end_user_auth_required,
        storage=storage,
        no_team=settings.end_user_authentication,
        sign_in_configured=sign_in_configured,
    )


def enroll(service, token, device: WindowsDevice | None = None, **claims):
    claims.setdefault("upn", "alice@corp.example")
    return service.enroll(_rst_for(device or WindowsDevice(), token(**claims)))


def move(storage, host_id: int, team_id: int | None) -> None:
    with storage.transaction() as tx:
        tx.hosts.set_team(host_id, team_id)


def team(storage, name: str, *, end_user_auth: bool, clock) -> int:
    with storage.transaction() as tx:
        return tx.teams.create(name, at=clock(), end_user_auth=end_user_auth).id


# -- recorded at enrollment -------------------------------------------------------------------


def test_an_entra_enrollment_records_the_device_id_and_a_later_one_refreshes_it(
    service, storage, token
) -> None:
    device = WindowsDevice()
    first = enroll(service, token, device, device_id=ENTRA_DEVICE.upper())
    assert first.host.entra_device_id == ENTRA_DEVICE  # canonical spelling
    # Entra vouches for the same device id: the same PC, enrolled again at once.
    assert enroll(service, token, device, device_id=ENTRA_DEVICE).host.id == first.host.id
    # Group Policy with a token naming no device (after the PC turned MDM off): the id stays.
    turned_off(storage, first.host.id, first.host.created_at)
    assert enroll(service, token, device).host.entra_device_id == ENTRA_DEVICE
    # Joined Entra again: a new Entra device id.
    turned_off(storage, first.host.id, first.host.created_at)
    again = enroll(service, token, device, device_id=STRANGER)
    assert again.host.id == first.host.id and again.host.entra_device_id == STRANGER
    with storage.transaction() as tx:
        assert tx.hosts.find_by_entra_device_id(ENTRA_DEVICE) is None
        assert tx.hosts.find_by_entra_device_id(STRANGER).id == first.host.id


# -- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("no_team", [False, True])
def test_an_unknown_device_or_none_follows_no_team(storage, clock, no_team: bool) -> None:
    required = rule(storage, clock, no_team=no_team)
    assert required(None) is no_team
    assert required(STRANGER) is no_team
    assert required("not even a guid") is no_team


@pytest.mark.parametrize("no_team", [False, True])
def test_a_known_device_follows_its_team(service, storage, token, clock, no_team: bool) -> None:
    host = enroll(service, token, device_id=ENTRA_DEVICE).host
    required = rule(storage, clock, no_team=no_team)
    assert required(ENTRA_DEVICE) is no_team  # still in No team
    strict = team(storage, "Finance", end_user_auth=True, clock=clock)
    relaxed = team(storage, "Kiosks", end_user_auth=False, clock=clock)
    move(storage, host.id, strict)
    assert required(ENTRA_DEVICE) is True
    assert required(ENTRA_DEVICE.upper()) is True  # the token's spelling does not matter
    assert required(STRANGER) is no_team
    move(storage, host.id, relaxed)
    assert required(ENTRA_DEVICE) is False
    move(storage, host.id, None)
    assert required(ENTRA_DEVICE) is no_team


def test_the_team_setting_is_read_when_asked(service, storage, token, clock) -> None:
    host = enroll(service, token, device_id=ENTRA_DEVICE).host
    team_id = team(storage, "Finance", end_user_auth=False, clock=clock)
    move(storage, host.id, team_id)
    required = rule(storage, clock, no_team=True)
    assert required(ENTRA_DEVICE) is False
    with storage.transaction() as tx:
        tx.teams.set_end_user_auth(team_id, True)
    assert required(ENTRA_DEVICE) is True
    with storage.transaction() as tx:
        tx.teams.delete(team_id)  # its hosts go to No team
    assert required(ENTRA_DEVICE) is True


def test_without_an_identity_provider_nobody_signs_in(service, storage, token, clock) -> None:
    host = enroll(service, token, device_id=ENTRA_DEVICE).host
    move(storage, host.id, team(storage, "Finance", end_user_auth=True, clock=clock))
    required = rule(storage, clock, no_team=True, sign_in_configured=False)
    assert required(ENTRA_DEVICE) is False
    assert required(None) is False
    assert required(str(uuid.uuid4())) is False
