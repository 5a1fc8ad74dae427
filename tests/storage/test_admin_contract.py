"""The storage contract for administration: admins, their tokens, failed sign-ins and settings.
Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import inspect
import threading
from contextlib import ExitStack
from datetime import timedelta

import pytest

from tests.storage.test_contract import T0
from winmdm.domain.admin import Admin, AdminToken, AdminTokenKind, Role
from winmdm.errors import Conflict, NotFound
from winmdm.storage import admin_protocols
from winmdm.storage.protocols import Transaction
from winmdm.storage.sql import SQLStorage
from winmdm.storage.sql_admin import SQLAdminStore, SQLAdminTokenStore, SQLLoginFailureStore, SQLSettingStore

IMPLEMENTATIONS = {
    admin_protocols.AdminStore: SQLAdminStore,
    admin_protocols.AdminTokenStore: SQLAdminTokenStore,
    admin_protocols.LoginFailureStore: SQLLoginFailureStore,
    admin_protocols.SettingStore: SQLSettingStore,
}
H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


@pytest.mark.parametrize("protocol", IMPLEMENTATIONS, ids=lambda p: p.__name__)
def test_every_admin_method_is_implemented(protocol: type) -> None:
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


def test_transaction_reaches_the_admin_stores(storage: SQLStorage) -> None:
    assert {"admins", "admin_tokens", "login_failures", "settings"} <= set(Transaction.__annotations__)
    with storage.transaction() as tx:
        assert isinstance(tx.admins, SQLAdminStore)
        assert isinstance(tx.admin_tokens, SQLAdminTokenStore)
        assert isinstance(tx.login_failures, SQLLoginFailureStore)
        assert isinstance(tx.settings, SQLSettingStore)


# --- admins ----------------------------------------------------------------------------------


def test_admin_create_get_find_and_credentials(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        alice = tx.admins.create(" Alice@Corp.Example ", "hash-a", Role.ADMIN, at=T0)
    assert alice == Admin(id=alice.id, email="alice@corp.example", role=Role.ADMIN, created_at=T0)
    with storage.transaction() as tx:
        assert tx.admins.get(alice.id) == alice
        assert tx.admins.get(alice.id + 100) is None
        assert tx.admins.find_by_email("ALICE@corp.example") == alice
        assert tx.admins.find_by_email("bob@corp.example") is None
        assert tx.admins.credentials("alice@CORP.example") == (alice, "hash-a")
        assert tx.admins.credentials("bob@corp.example") is None
        assert tx.admins.set_password_hash(alice.id, "hash-b") is True
        assert tx.admins.set_password_hash(alice.id + 100, "hash-c") is False
    with storage.transaction() as tx:
        assert tx.admins.credentials("alice@corp.example") == (alice, "hash-b")


def test_duplicate_email_any_case_is_a_conflict_and_keeps_the_transaction(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        first = tx.admins.create("alice@corp.example", "h", Role.ADMIN, at=T0)
        with pytest.raises(Conflict, match=r"alice@corp\.example"):
            tx.admins.create("ALICE@corp.example", "h", Role.OBSERVER, at=T0)
        other = tx.admins.create("bob@corp.example", "h", Role.OBSERVER, at=T0)
    with storage.transaction() as tx:
        assert tx.admins.list() == [first, other]


def test_admins_listed_by_email_and_counted_by_role(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        for email, role in (("carol@x.example", Role.OBSERVER), ("alice@x.example", Role.ADMIN)):
            tx.admins.create(email, "h", role, at=T0)
        tx.admins.create("bob@x.example", "h", Role.MAINTAINER, at=T0)
    with storage.transaction() as tx:
        listed = tx.admins.list()
        assert [(a.email, a.role) for a in listed] == [
            ("alice@x.example", Role.ADMIN),
            ("bob@x.example", Role.MAINTAINER),
            ("carol@x.example", Role.OBSERVER),
        ]
        assert tx.admins.count() == 3
        assert tx.admins.count(Role.ADMIN) == 1
        assert tx.admins.count(Role.MAINTAINER, lock=True) == 1
        assert tx.admins.count(lock=True) == 3


def test_role_is_checked_by_the_database(storage: SQLStorage) -> None:
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), storage.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO admins (email, password_hash, role, created_at) VALUES ('x@y.z', 'h', 'root', :at)"
            ),
            {"at": T0},
        )


def test_deleting_an_admin_deletes_their_tokens(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        alice = tx.admins.create("alice@corp.example", "h", Role.ADMIN, at=T0)
        bob = tx.admins.create("bob@corp.example", "h", Role.ADMIN, at=T0)
        gone = tx.admin_tokens.add(alice.id, H1, AdminTokenKind.API, "ci", at=T0)
        kept = tx.admin_tokens.add(bob.id, H2, AdminTokenKind.API, "ci", at=T0)
    with storage.transaction() as tx:
        assert tx.admins.delete(alice.id) is True
        assert tx.admins.delete(alice.id) is False
    with storage.transaction() as tx:
        assert tx.admins.get(alice.id) is None
        assert tx.admin_tokens.get(gone.id) is None
        assert tx.admin_tokens.find(H1) is None
        assert tx.admin_tokens.list(None) == [kept]


def test_counting_with_lock_makes_a_concurrent_delete_wait(storage: SQLStorage) -> None:
    """The last-admin rule: two admins deleting each other at once cannot both succeed."""
    with storage.transaction() as tx:
        alice = tx.admins.create("alice@corp.example", "h", Role.ADMIN, at=T0)
        bob = tx.admins.create("bob@corp.example", "h", Role.ADMIN, at=T0)
    seen: list[int] = []

    def delete_if_not_last(admin_id: int) -> None:
        with storage.transaction() as tx:
            count = tx.admins.count(Role.ADMIN, lock=True)
            seen.append(count)
            if count > 1:
                tx.admins.delete(admin_id)

    with ExitStack() as stack:
        tx = stack.enter_context(storage.transaction())
        assert tx.admins.count(Role.ADMIN, lock=True) == 2
        thread = threading.Thread(target=delete_if_not_last, args=(bob.id,))
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive(), "the second transaction must wait for the first"
        tx.admins.delete(alice.id)
    thread.join(timeout=10)
    assert seen == [1]
    with storage.transaction() as tx:
        assert [a.email for a in tx.admins.list()] == ["bob@corp.example"]


# --- tokens ----------------------------------------------------------------------------------


def test_token_add_find_get_list(storage: SQLStorage) -> None:
    expires = T0 + timedelta(hours=24)
    with storage.transaction() as tx:
        alice = tx.admins.create("alice@corp.example", "h", Role.MAINTAINER, at=T0)
        bob = tx.admins.create("bob@corp.example", "h", Role.OBSERVER, at=T0)
        session = tx.admin_tokens.add(
            alice.id, H1, AdminTokenKind.SESSION, "sign-in", at=T0, expires_at=expires
        )
        api = tx.admin_tokens.add(alice.id, H2, AdminTokenKind.API, "ci", at=T0 + timedelta(seconds=1))
        other = tx.admin_tokens.add(bob.id, H3, AdminTokenKind.API, "laptop", at=T0 + timedelta(seconds=2))
    assert session == AdminToken(
        id=session.id,
        admin_id=alice.id,
        kind=AdminTokenKind.SESSION,
        name="sign-in",
        created_at=T0,
        expires_at=expires,
    )
    assert api.expires_at is None and api.kind is AdminTokenKind.API
    with storage.transaction() as tx:
        assert tx.admin_tokens.find(H1) == (session, alice)
        assert tx.admin_tokens.find(H3) == (other, bob)
        assert tx.admin_tokens.find("0" * 64) is None
        assert tx.admin_tokens.get(api.id) == api
        assert tx.admin_tokens.get(other.id + 100) is None
        assert tx.admin_tokens.list(None) == [session, api, other]
        assert tx.admin_tokens.list(alice.id) == [session, api]
        assert tx.admin_tokens.list(alice.id, kind=AdminTokenKind.API) == [api]
        assert tx.admin_tokens.list(None, kind=AdminTokenKind.API) == [api, other]
        assert tx.admin_tokens.list(bob.id, kind=AdminTokenKind.SESSION) == []


def test_token_for_unknown_admin_is_not_found_and_duplicate_hash_a_conflict(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        alice = tx.admins.create("alice@corp.example", "h", Role.ADMIN, at=T0)
        with pytest.raises(NotFound):
            tx.admin_tokens.add(alice.id + 100, H1, AdminTokenKind.API, "x", at=T0)
        first = tx.admin_tokens.add(alice.id, H1, AdminTokenKind.API, "x", at=T0)
        with pytest.raises(Conflict):
            tx.admin_tokens.add(alice.id, H1, AdminTokenKind.SESSION, "y", at=T0)
        # Still usable after the clash (a savepoint; PostgreSQL would have aborted).
        assert tx.admin_tokens.list(alice.id) == [first]


def test_token_revoke_touch_and_purge(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        alice = tx.admins.create("alice@corp.example", "h", Role.ADMIN, at=T0)
        old = tx.admin_tokens.add(
            alice.id, H1, AdminTokenKind.SESSION, "s", at=T0, expires_at=T0 + timedelta(hours=1)
        )
        api = tx.admin_tokens.add(alice.id, H2, AdminTokenKind.API, "ci", at=T0)
        current = tx.admin_tokens.add(
            alice.id, H3, AdminTokenKind.SESSION, "s", at=T0, expires_at=T0 + timedelta(days=1)
        )
    later = T0 + timedelta(hours=2)
    with storage.transaction() as tx:
        assert tx.admin_tokens.revoke(api.id, later) is True
        assert tx.admin_tokens.revoke(api.id, later + timedelta(hours=1)) is False
        assert tx.admin_tokens.revoke(api.id + 100, later) is False
        tx.admin_tokens.touch(current.id, later)
    with storage.transaction() as tx:
        assert tx.admin_tokens.get(api.id).revoked_at == later
        assert tx.admin_tokens.get(current.id).last_used_at == later
        assert tx.admin_tokens.purge_expired(later) == 1
    with storage.transaction() as tx:
        assert tx.admin_tokens.get(old.id) is None
        # Never-expiring API tokens are not purged, revoked or not.
        assert [t.id for t in tx.admin_tokens.list(None)] == [api.id, current.id]


def test_token_active_at() -> None:
    token = AdminToken(1, 1, AdminTokenKind.SESSION, "s", T0, expires_at=T0 + timedelta(hours=1))
    assert token.active_at(T0)
    assert not token.active_at(T0 + timedelta(hours=1))
    assert AdminToken(1, 1, AdminTokenKind.API, "a", T0).active_at(T0 + timedelta(days=9999))
    assert not AdminToken(1, 1, AdminTokenKind.API, "a", T0, revoked_at=T0).active_at(T0)


# --- failed sign-ins -------------------------------------------------------------------------


def test_login_attempts_by_email_and_address_and_by_address(storage: SQLStorage) -> None:
    times = [T0 + timedelta(minutes=m) for m in range(5)]
    with storage.transaction() as tx:
        ids = [
            tx.login_failures.add("Alice@corp.example", "10.0.0.1", at=times[0]),
            tx.login_failures.add("alice@corp.example", "10.0.0.2", at=times[1]),
            tx.login_failures.add("bob@corp.example", "10.0.0.1", at=times[2]),
            tx.login_failures.add("bob@corp.example", None, at=times[3]),
            tx.login_failures.add("alice@corp.example", "10.0.0.1", at=times[4]),
        ]
    assert len(set(ids)) == 5
    with storage.transaction() as tx:
        recent = tx.login_failures.recent
        assert recent(since=T0, email="ALICE@corp.example", client="10.0.0.1") == [times[4], times[0]]
        assert recent(since=times[1], email="alice@corp.example", client="10.0.0.1") == [times[4]]
        assert recent(since=T0, email="alice@corp.example", client="10.0.0.2") == [times[1]]
        assert recent(since=T0, client="10.0.0.1") == [times[4], times[2], times[0]]
        assert recent(since=T0, email="bob@corp.example") == [times[3]]  # no address: its own
        assert recent(since=T0, email="bob@corp.example", client="10.0.0.1", limit=1) == [times[2]]
        assert recent(since=T0) == []
        assert recent(since=T0, client="") == []
        tx.login_failures.remove(ids[4])
        assert recent(since=T0, email="alice@corp.example", client="10.0.0.1") == [times[0]]
        assert tx.login_failures.clear("ALICE@corp.example", "10.0.0.1") == 1
        assert recent(since=T0, email="alice@corp.example", client="10.0.0.2") == [times[1]]
        assert tx.login_failures.clear("bob@corp.example", None) == 1
        assert recent(since=T0, client="10.0.0.1") == [times[2]]
        assert tx.login_failures.purge(times[2]) == 1


# --- settings --------------------------------------------------------------------------------


def test_settings_have_the_migrations_defaults(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        assert tx.settings.read() == {
            "windows_enabled_and_configured": True,
            "windows_migration_enabled": False,
            "enable_turn_on_windows_mdm_manually": False,
        }


def test_settings_write_inserts_and_replaces(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        tx.settings.write({"windows_migration_enabled": True, "end_user_authentication": True}, at=T0)
    with storage.transaction() as tx:
        values = tx.settings.read(lock=True)
        assert values["windows_migration_enabled"] is True
        assert values["end_user_authentication"] is True
        tx.settings.write({"end_user_authentication": False, "note": {"a": [1, "b"]}}, at=T0)
    with storage.transaction() as tx:
        values = tx.settings.read()
        assert values["end_user_authentication"] is False
        assert values["note"] == {"a": [1, "b"]}
        assert values["windows_enabled_and_configured"] is True


def test_settings_write_rolled_back_is_not_written(storage: SQLStorage) -> None:
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.settings.write({"windows_enabled_and_configured": False}, at=T0)
        raise RuntimeError("the rule failed after writing")
    with storage.transaction() as tx:
        assert tx.settings.read()["windows_enabled_and_configured"] is True


def test_reading_settings_with_lock_makes_a_concurrent_update_wait(storage: SQLStorage) -> None:
    results: list[dict] = []

    def second() -> None:
        with storage.transaction() as tx:
            results.append(tx.settings.read(lock=True))

    with ExitStack() as stack:
        tx = stack.enter_context(storage.transaction())
        tx.settings.read(lock=True)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.3)
        assert thread.is_alive(), "the second transaction must wait for the first"
        tx.settings.write({"windows_migration_enabled": True}, at=T0)
    thread.join(timeout=10)
    assert results[0]["windows_migration_enabled"] is True
