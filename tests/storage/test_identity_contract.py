"""The storage contract for enrollment identity: teams, used enrollment tokens, bulk secrets,
and the new Enrollment/Host fields. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
import threading
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.storage.test_contract import T0, new_enrollment, new_host
from winmdm.domain.identity import EnrollmentKind, EnrollmentSecret, Team, is_real_serial
from winmdm.domain.management import Inventory
from winmdm.domain.models import MDMStatus, TokenKind
from winmdm.errors import Conflict, NotFound
from winmdm.storage import identity_protocols
from winmdm.storage.protocols import EnrollmentStore, HostStore, Transaction
from winmdm.storage.schema import teams
from winmdm.storage.sql import SQLEnrollmentStore, SQLHostStore, SQLStorage
from winmdm.storage.sql_identity import SQLEnrollmentSecretStore, SQLEnrollmentTokenStore, SQLTeamStore

IMPLEMENTATIONS = {
    identity_protocols.TeamStore: SQLTeamStore,
    identity_protocols.EnrollmentTokenStore: SQLEnrollmentTokenStore,
    identity_protocols.EnrollmentSecretStore: SQLEnrollmentSecretStore,
    HostStore: SQLHostStore,
    EnrollmentStore: SQLEnrollmentStore,
}
H = "a" * 64  # a secret hash


@pytest.mark.parametrize("protocol", IMPLEMENTATIONS, ids=lambda p: p.__name__)
def test_every_identity_method_is_implemented(protocol: type) -> None:
    impl = IMPLEMENTATIONS[protocol]
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        wanted = inspect.signature(member).parameters
        got = inspect.signature(getattr(impl, name)).parameters
        assert list(got) == list(wanted), f"{impl.__name__}.{name} parameters differ"
        for parameter in wanted.values():
            assert got[parameter.name].kind == parameter.kind, f"{impl.__name__}.{name}({parameter.name})"
            assert got[parameter.name].default == parameter.default, f"{impl.__name__}.{name}"


def test_transaction_reaches_the_identity_stores(storage: SQLStorage) -> None:
    assert {"teams", "enrollment_tokens", "enrollment_secrets"} <= set(Transaction.__annotations__)
    with storage.transaction() as tx:
        assert isinstance(tx.teams, SQLTeamStore)
        assert isinstance(tx.enrollment_tokens, SQLEnrollmentTokenStore)
        assert isinstance(tx.enrollment_secrets, SQLEnrollmentSecretStore)


# --- teams -----------------------------------------------------------------------------------


def test_team_create_get_and_end_user_auth(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        plain = tx.teams.create("Finance", at=T0)
        signed_in = tx.teams.create("Sales", at=T0, end_user_auth=True)
    assert plain == Team(id=plain.id, name="Finance", end_user_auth=False, created_at=T0)
    assert signed_in.end_user_auth is True
    with storage.transaction() as tx:
        assert tx.teams.get(plain.id) == plain
        assert tx.teams.get(plain.id + signed_in.id + 100) is None
        changed = tx.teams.set_end_user_auth(plain.id, True)
        assert changed == Team(id=plain.id, name="Finance", end_user_auth=True, created_at=T0)
    with storage.transaction() as tx:
        assert tx.teams.get(plain.id).end_user_auth is True
        assert tx.teams.set_end_user_auth(plain.id, False).end_user_auth is False


def test_set_end_user_auth_of_unknown_team_is_not_found(storage: SQLStorage) -> None:
    with pytest.raises(NotFound), storage.transaction() as tx:
        tx.teams.set_end_user_auth(999, True)


def test_duplicate_team_name_is_a_conflict_and_keeps_the_transaction(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        first = tx.teams.create("Finance", at=T0)
        with pytest.raises(Conflict, match='"Finance"'):
            tx.teams.create("Finance", at=T0, end_user_auth=True)
        # The savepoint kept the transaction usable (PostgreSQL would have aborted it).
        other = tx.teams.create("Sales", at=T0)
    with storage.transaction() as tx:
        assert tx.teams.list() == [first, other]


def test_teams_listed_by_name(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        for name in ("sales", "Finance", "Engineering", "alpha", "Zeta"):
            tx.teams.create(name, at=T0)
    with storage.transaction() as tx:
        assert [t.name for t in tx.teams.list()] == ["alpha", "Engineering", "Finance", "sales", "Zeta"]


def test_no_teams_lists_empty(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        assert tx.teams.list() == []


# --- enrollment tokens -----------------------------------------------------------------------


def test_token_consumed_once_only(storage: SQLStorage) -> None:
    expires = T0 + timedelta(minutes=10)
    with storage.transaction() as tx:
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0) is True
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0) is False
        assert tx.enrollment_tokens.consume("jti-2", expires_at=expires, at=T0) is True
    with storage.transaction() as tx:
        later = T0 + timedelta(minutes=1)
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=later) is False


def test_token_use_rolled_back_is_not_a_use(storage: SQLStorage) -> None:
    expires = T0 + timedelta(minutes=10)
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0)
        raise RuntimeError("enrollment failed after the token was checked")
    with storage.transaction() as tx:
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0) is True


def test_concurrent_uses_of_a_token_one_wins(storage: SQLStorage) -> None:
    """Two transactions at once: the unique key makes the second wait and then see the first."""
    expires = T0 + timedelta(minutes=10)
    results: list[bool] = []

    def second_use() -> None:
        with storage.transaction() as tx:
            results.append(tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0))

    with ExitStack() as stack:
        tx = stack.enter_context(storage.transaction())
        assert tx.enrollment_tokens.consume("jti-1", expires_at=expires, at=T0) is True
        thread = threading.Thread(target=second_use)
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive(), "the second use must wait for the first transaction"
    thread.join(timeout=10)
    assert results == [False]


def test_purge_expired_tokens(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        for minutes in (1, 2, 5):
            tx.enrollment_tokens.consume(f"jti-{minutes}", expires_at=T0 + timedelta(minutes=minutes), at=T0)
    with storage.transaction() as tx:
        assert tx.enrollment_tokens.purge_expired(T0 + timedelta(minutes=2)) == 1
        assert tx.enrollment_tokens.purge_expired(T0 + timedelta(minutes=2)) == 0
    with storage.transaction() as tx:
        # Still remembered until expired: a replay is still refused.
        assert tx.enrollment_tokens.consume("jti-2", expires_at=T0, at=T0) is False
        assert tx.enrollment_tokens.consume("jti-5", expires_at=T0, at=T0) is False
        assert tx.enrollment_tokens.consume("jti-1", expires_at=T0, at=T0) is True


# --- bulk secrets ----------------------------------------------------------------------------


def test_secret_create_find_list_and_revoke(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        first = tx.enrollment_secrets.create(team.id, "1" * 64, at=T0)
        second = tx.enrollment_secrets.create(team.id, "2" * 64, at=T0 + timedelta(days=1))
        no_team = tx.enrollment_secrets.create(None, "3" * 64, at=T0)
    assert first == EnrollmentSecret(id=first.id, team_id=team.id, secret_hash="1" * 64, created_at=T0)
    assert no_team.team_id is None
    with storage.transaction() as tx:
        assert tx.enrollment_secrets.find_active("1" * 64) == first
        assert tx.enrollment_secrets.find_active("3" * 64) == no_team
        assert tx.enrollment_secrets.find_active("9" * 64) is None
        assert tx.enrollment_secrets.list(team.id) == [first, second]
        assert tx.enrollment_secrets.list(None) == [no_team]
        assert tx.enrollment_secrets.revoke(first.id, T0 + timedelta(days=2)) is True
        assert tx.enrollment_secrets.revoke(first.id, T0 + timedelta(days=3)) is False
        assert tx.enrollment_secrets.revoke(first.id + second.id + no_team.id, T0) is False
    with storage.transaction() as tx:
        assert tx.enrollment_secrets.find_active("1" * 64) is None
        revoked, active = tx.enrollment_secrets.list(team.id)
        assert revoked.revoked_at == T0 + timedelta(days=2) and active == second


def test_secret_hash_is_unique(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        tx.enrollment_secrets.create(None, H, at=T0)
        with pytest.raises(Conflict):
            tx.enrollment_secrets.create(None, H, at=T0)
        tx.enrollment_secrets.create(None, "b" * 64, at=T0)  # the transaction is still usable
    with storage.transaction() as tx:
        assert len(tx.enrollment_secrets.list(None)) == 2


def test_secret_for_unknown_team_is_not_found(storage: SQLStorage) -> None:
    with pytest.raises(NotFound), storage.transaction() as tx:
        tx.enrollment_secrets.create(999, H, at=T0)


def test_team_secrets_go_with_the_team(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=T0)
        tx.enrollment_secrets.create(team.id, H, at=T0)
    with storage.transaction() as tx:
        tx.connection.execute(teams.delete().where(teams.c.id == team.id))
        assert tx.enrollment_secrets.find_active(H) is None


# --- new Enrollment and Host fields ----------------------------------------------------------


def test_enrollment_kind_and_end_user_round_trip(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        plain = tx.enrollments.add(new_enrollment(host.id))
        assert plain.enrollment_kind is None and plain.end_user_username is None
        tx.enrollments.deactivate_for_host(host.id)
        added = tx.enrollments.add(
            new_enrollment(
                host.id,
                token_kind=TokenKind.ENROLLMENT_TOKEN,
                enrollment_kind=EnrollmentKind.MANUAL,
                end_user_username="bob@corp.example",
            )
        )
        bulk = tx.enrollments.add(
            new_enrollment(
                host.id, token_kind=TokenKind.BULK_SECRET, enrollment_kind=EnrollmentKind.AUTOMATIC
            )
        )
    assert added.token_kind is TokenKind.ENROLLMENT_TOKEN
    assert added.enrollment_kind is EnrollmentKind.MANUAL
    assert added.end_user_username == "bob@corp.example"
    with storage.transaction() as tx:
        assert tx.enrollments.get(added.id) == added
        assert tx.enrollments.get(bulk.id).token_kind is TokenKind.BULK_SECRET
        assert tx.enrollments.get(bulk.id).enrollment_kind is EnrollmentKind.AUTOMATIC
        assert tx.enrollments.list_for_host(host.id) == [replace(plain, active=False), added, bulk]


def test_host_enrollment_kind_created_and_recorded(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        created = tx.hosts.create(new_host(enrollment_kind=EnrollmentKind.AUTOMATIC))
        plain = tx.hosts.create(new_host(uuid="u-2", hw_dev_id="HW-2", device_id="DEV-2"))
    assert created.enrollment_kind is EnrollmentKind.AUTOMATIC and plain.enrollment_kind is None
    record = {
        "display_name": "DESKTOP-NEW",
        "hw_dev_id": None,
        "device_id": None,
        "os_version": None,
        "os_edition": None,
        "idp_username": None,
        "mdm_status": MDMStatus.PENDING,
        "at": T0 + timedelta(hours=1),
    }
    with storage.transaction() as tx:
        assert tx.hosts.get(created.id) == created
        # None (and the parameter left out) keeps the stored value.
        assert tx.hosts.record_enrollment(created.id, **record).enrollment_kind is EnrollmentKind.AUTOMATIC
        kept = tx.hosts.record_enrollment(created.id, **record, enrollment_kind=None)
        assert kept.enrollment_kind is EnrollmentKind.AUTOMATIC
        changed = tx.hosts.record_enrollment(created.id, **record, enrollment_kind=EnrollmentKind.MANUAL)
        assert changed.enrollment_kind is EnrollmentKind.MANUAL
    with storage.transaction() as tx:
        assert tx.hosts.get(created.id).enrollment_kind is EnrollmentKind.MANUAL
        assert (
            tx.hosts.find_known(hw_dev_id="A1B2C3", device_id=None).enrollment_kind is EnrollmentKind.MANUAL
        )


# --- serials ---------------------------------------------------------------------------------

FAKE_SERIALS = (
    *(None, "", "   ", "To be filled by O.E.M.", "to be filled by o.e.m.", "Default string"),
    *("DEFAULT STRING", "System Serial Number", "0", " 0 ", "None", "none", "Not Specified"),
    *("123456789", "INVALID", "invalid"),
)


@pytest.mark.parametrize("serial", FAKE_SERIALS)
def test_placeholder_serials_are_not_real(serial: str | None) -> None:
    assert is_real_serial(serial) is False


@pytest.mark.parametrize("serial", ["PF3ABCDE", "5CG1234XYZ", "00", "1234567890", "Default"])
def test_real_serials(serial: str) -> None:
    assert is_real_serial(serial) is True


def test_record_inventory_returns_the_enrollment_kind(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host(enrollment_kind=EnrollmentKind.MANUAL))
        updated = tx.inventory.record_inventory(host.id, Inventory(serial="PF3ABCDE"), T0)
    assert updated.enrollment_kind is EnrollmentKind.MANUAL
