"""Teams and their enrollment secrets (TeamService, EnrollmentSecrets) on SQLite and PostgreSQL:
names, end-user authentication, deletion, and the activity every change leaves."""

from __future__ import annotations

import pytest

from tests.services.test_hosts import ADMIN, activities, seed
from tests.services.test_profiles import PROFILE
from winmdm.domain.identity import Team
from winmdm.domain.models import MDMStatus
from winmdm.errors import Conflict, InvalidInput, NotFound
from winmdm.services.bulk import secret_hash


def test_create_trims_the_name_and_records_the_actor(runtime, clock) -> None:
    team = runtime.teams.create("  Finance ", end_user_authentication=True, actor=ADMIN)
    assert team == Team(id=team.id, name="Finance", end_user_auth=True, created_at=clock.now)
    assert runtime.teams.get(team.id) == team and runtime.teams.list() == [team]
    [created] = activities(runtime, "created_team")
    assert created.actor == ADMIN and created.created_at == clock.now
    assert created.details == {"team_id": team.id, "team_name": "Finance", "end_user_authentication": True}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 256, "256 characters long; shorten it to 255"),
        ("No team", '"No team" is reserved'),
        (" no TEAM ", '"No team" is reserved'),
        ("Two\nlines", "one line"),
    ],
)
def test_bad_names_say_what_to_do(runtime, name, says) -> None:
    with pytest.raises(InvalidInput, match=says) as caught:
        runtime.teams.create(name, actor=ADMIN)
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput, match=says):
        runtime.teams.update(runtime.teams.create("Sales", actor=None).id, name=name, actor=ADMIN)


def test_longest_name_is_accepted(runtime) -> None:
    assert runtime.teams.create("x" * 255, actor=ADMIN).name == "x" * 255


def test_duplicate_names_are_a_conflict(runtime) -> None:
    runtime.teams.create("Finance", actor=ADMIN)
    sales = runtime.teams.create("Sales", actor=ADMIN)
    with pytest.raises(Conflict, match='"Finance" already exists'):
        runtime.teams.create("Finance", actor=ADMIN)
    with pytest.raises(Conflict, match='"Finance" already exists'):
        runtime.teams.update(sales.id, name="Finance", actor=ADMIN)
    assert runtime.teams.get(sales.id).name == "Sales"
    assert len(activities(runtime, "created_team")) == 2 and activities(runtime, "edited_team") == []


def test_update_renames_and_switches_end_user_authentication(runtime) -> None:
    team = runtime.teams.create("Finance", actor=ADMIN)
    renamed = runtime.teams.update(team.id, name="Accounting", actor=ADMIN)
    assert renamed.name == "Accounting" and renamed.end_user_auth is False
    [edited] = activities(runtime, "edited_team")
    assert edited.actor == ADMIN
    assert edited.details == {"team_id": team.id, "team_name": "Accounting", "previous_name": "Finance"}
    on = runtime.teams.update(team.id, end_user_authentication=True, actor=ADMIN)
    assert on.end_user_auth is True and runtime.teams.get(team.id).end_user_auth is True
    off = runtime.teams.update(team.id, end_user_authentication=False, actor="other@corp.example")
    assert off.end_user_auth is False
    [enabled] = activities(runtime, "enabled_end_user_authentication")
    [disabled] = activities(runtime, "disabled_end_user_authentication")
    assert (enabled.actor, disabled.actor) == (ADMIN, "other@corp.example")
    assert disabled.details == {"team_id": team.id, "team_name": "Accounting"}


def test_an_update_that_changes_nothing_leaves_no_activity(runtime) -> None:
    team = runtime.teams.create("Finance", actor=ADMIN)
    assert runtime.teams.update(team.id, name=" Finance ", end_user_authentication=False, actor=ADMIN) == team
    assert runtime.teams.update(team.id, actor=ADMIN) == team
    assert activities(runtime, "edited_team") == []
    assert activities(runtime, "disabled_end_user_authentication") == []


def test_unknown_teams_are_not_found(runtime) -> None:
    with pytest.raises(NotFound, match="no team with id 12"):
        runtime.teams.get(12)
    with pytest.raises(NotFound, match="no team with id 12"):
        runtime.teams.update(12, name="Anything", actor=ADMIN)
    with pytest.raises(NotFound, match="no team with id 12"):
        runtime.teams.delete(12, actor=ADMIN)


def test_delete_moves_hosts_to_no_team_and_removes_profiles_and_secrets(runtime) -> None:
    finance = runtime.teams.create("Finance", actor=ADMIN).id
    sales = runtime.teams.create("Sales", actor=ADMIN).id
    moved = seed(runtime, 1, team_id=finance, mdm_status=MDMStatus.ON)
    kept = seed(runtime, 2, team_id=sales, mdm_status=MDMStatus.ON)
    profile = runtime.profiles.add_profile(finance, "Update hours", PROFILE, actor=ADMIN)
    other = runtime.profiles.add_profile(sales, "Update hours", PROFILE, actor=ADMIN)
    [queued] = runtime.profiles.host_profiles(moved)
    secret = runtime.bulk.create(finance, actor=ADMIN)
    runtime.teams.delete(finance, actor=ADMIN)
    assert [t.id for t in runtime.teams.list()] == [sales]
    assert runtime.hosts.get(moved).team_id is None and runtime.hosts.get(kept).team_id == sales
    with pytest.raises(NotFound):
        runtime.profiles.get_profile(profile.id)
    assert runtime.profiles.get_profile(other.id) == other
    # The profile never reached the host: its delivery is dropped, nothing is left to remove.
    assert runtime.profiles.host_profiles(moved) == []
    with runtime.storage.transaction() as tx:
        assert tx.commands.get(moved, queued.command_uuid) is None
        assert tx.enrollment_secrets.find_active(secret_hash(secret.secret)) is None
    [deleted] = activities(runtime, "deleted_team")
    assert deleted.actor == ADMIN
    assert deleted.details == {"team_id": finance, "team_name": "Finance", "hosts_moved_to_no_team": 1}
    [removed] = activities(runtime, "deleted_windows_profile")
    assert removed.actor == ADMIN and removed.details["profile_id"] == profile.id


# --- enrollment secrets ----------------------------------------------------------------------


def test_enrollment_secret_changes_are_activities(runtime) -> None:
    finance = runtime.teams.create("Finance", actor=ADMIN).id
    first = runtime.bulk.create(finance, actor=ADMIN)
    second = runtime.bulk.create(None, actor="ops@corp.example")
    rotated = runtime.bulk.rotate(finance, actor=ADMIN)
    created = activities(runtime, "created_enrollment_secret")
    assert [(a.actor, a.details) for a in created] == [
        (ADMIN, {"team_id": finance, "team_name": "Finance", "secret_id": first.record.id}),
        ("ops@corp.example", {"team_id": None, "team_name": "No team", "secret_id": second.record.id}),
    ]
    [rotation] = activities(runtime, "rotated_enrollment_secrets")
    assert rotation.actor == ADMIN
    assert rotation.details == {
        "team_id": finance,
        "team_name": "Finance",
        "secret_id": rotated.record.id,
        "revoked_secret_ids": [first.record.id],
    }


def test_revoke_one_secret(runtime) -> None:
    finance = runtime.teams.create("Finance", actor=ADMIN).id
    kept = runtime.bulk.create(finance, actor=ADMIN)
    gone = runtime.bulk.create(finance, actor=ADMIN)
    assert runtime.bulk.revoke(finance, gone.record.id, actor=ADMIN) is True
    assert runtime.bulk.revoke(finance, gone.record.id, actor=ADMIN) is False  # already revoked
    active = [s.id for s in runtime.bulk.list(finance) if s.revoked_at is None]
    assert active == [kept.record.id]
    [revoked] = activities(runtime, "revoked_enrollment_secret")
    assert revoked.actor == ADMIN
    assert revoked.details == {"team_id": finance, "team_name": "Finance", "secret_id": gone.record.id}


def test_revoke_needs_the_secret_to_be_the_teams(runtime) -> None:
    finance = runtime.teams.create("Finance", actor=ADMIN).id
    secret = runtime.bulk.create(finance, actor=ADMIN)
    with pytest.raises(NotFound, match=f'"No team" has no enrollment secret with id {secret.record.id}'):
        runtime.bulk.revoke(None, secret.record.id, actor=ADMIN)
    with pytest.raises(NotFound, match="no team with id 77"):
        runtime.bulk.revoke(77, secret.record.id, actor=ADMIN)
    assert activities(runtime, "revoked_enrollment_secret") == []
