"""Admin accounts: creating and deleting, signing in with its rate limit, session and API tokens."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from winmdm.domain.admin import AdminTokenKind, Principal, Role
from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
)
from winmdm.services.accounts import (
    API_PREFIX,
    MESSAGE_WRONG_CREDENTIALS,
    SESSION_PREFIX,
    AdminAccounts,
    IssuedToken,
    token_hash,
)
from winmdm.services.sign_in import MAX_FAILURES, MAX_FROM_ADDRESS, MESSAGE_BUSY, HashSlots

PASSWORD = "correct horse battery"
# Cheap parameters: the tests hash many passwords; production uses argon2-cffi's defaults.
FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


class CountingHasher(PasswordHasher):
    def __init__(self, **kwargs) -> None:
        super().__init__(**(FAST | kwargs))
        self.verified: list[str] = []

    def verify(self, hash, password) -> bool:
        self.verified.append(hash)
        return super().verify(hash, password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def accounts(storage, clock, hasher) -> AdminAccounts:
    return AdminAccounts(storage, clock, hasher=hasher)


@pytest.fixture
def alice(accounts):
    return accounts.create_admin("Alice@Corp.Example", PASSWORD, Role.ADMIN, None)


def activities(storage) -> list[tuple[str, str | None, dict]]:
    with storage.transaction() as tx:
        return [(a.type, a.actor, a.details) for a in reversed(tx.activities.list())]


def as_principal(accounts: AdminAccounts, email: str) -> Principal:
    return accounts.authenticate(accounts.login(email, PASSWORD, "10.0.0.1").token)


# --- accounts --------------------------------------------------------------------------------


def test_create_admin_stores_a_lower_case_email_and_an_argon2id_hash(accounts, storage, alice, clock) -> None:
    assert alice.email == "alice@corp.example" and alice.role is Role.ADMIN and alice.created_at == clock.now
    with storage.transaction() as tx:
        _, stored = tx.admins.credentials("alice@corp.example")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.list_admins() == [alice]
    assert accounts.get_admin(alice.id) == alice
    assert accounts.find_admin("ALICE@corp.example") == alice
    assert activities(storage) == [
        ("created_admin", None, {"admin_id": alice.id, "email": "alice@corp.example", "role": "admin"})
    ]


def test_create_admin_by_an_admin_names_the_actor_and_others_may_not(accounts, storage, alice) -> None:
    admin = as_principal(accounts, "alice@corp.example")
    bob = accounts.create_admin("bob@corp.example", PASSWORD, "observer", admin)
    assert bob.role is Role.OBSERVER
    assert activities(storage)[-1] == (
        "created_admin",
        "alice@corp.example",
        {"admin_id": bob.id, "email": "bob@corp.example", "role": "observer"},
    )
    accounts.create_admin("carol@corp.example", PASSWORD, Role.MAINTAINER, "alice@corp.example")
    observer = as_principal(accounts, "bob@corp.example")
    with pytest.raises(AuthorizationFailed, match="needs the admin role"):
        accounts.create_admin("dave@corp.example", PASSWORD, Role.OBSERVER, observer)


@pytest.mark.parametrize(
    "email", ["", "alice", "alice@", "@corp.example", "a b@corp.example", "alice@corp", "a@b@c.d"]
)
def test_create_admin_refuses_emails_that_are_not_emails(accounts, email: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        accounts.create_admin(email, PASSWORD, Role.ADMIN, None)
    assert raised.value.field == "email"
    assert "name@example.com" in raised.value.message


def test_create_admin_refuses_short_and_huge_passwords(accounts) -> None:
    with pytest.raises(InvalidInput) as raised:
        accounts.create_admin("a@corp.example", "short pass", Role.ADMIN, None)
    assert raised.value.field == "password"
    assert raised.value.message.startswith("the password must be at least 12 characters long (it has 10)")
    with pytest.raises(InvalidInput, match="at most 1024"):
        accounts.create_admin("a@corp.example", "x" * 1025, Role.ADMIN, None)
    accounts.create_admin("a@corp.example", "x" * 12, Role.ADMIN, None)


def test_create_admin_refuses_unknown_roles_and_duplicate_emails(accounts, alice) -> None:
    with pytest.raises(InvalidInput) as raised:
        accounts.create_admin("b@corp.example", PASSWORD, "root", None)
    assert raised.value.field == "role" and "admin, maintainer or observer" in raised.value.message
    with pytest.raises(Conflict, match="already exists"):
        accounts.create_admin("ALICE@corp.example", PASSWORD, Role.OBSERVER, None)


def test_the_last_admin_cannot_be_deleted(accounts, storage, alice) -> None:
    observer = accounts.create_admin("olga@corp.example", PASSWORD, Role.OBSERVER, None)
    with pytest.raises(Conflict) as raised:
        accounts.delete_admin(alice.id, None)
    assert raised.value.message == (
        "alice@corp.example is the last admin, and winmdm needs one to manage accounts and settings. "
        "Make another admin first, then delete this one."
    )
    # Non-admins may go; once there is another admin, so may alice.
    assert accounts.delete_admin(observer.id, None) == observer
    bob = accounts.create_admin("bob@corp.example", PASSWORD, Role.ADMIN, None)
    token = accounts.login("alice@corp.example", PASSWORD, None).token
    accounts.delete_admin(alice.id, as_principal(accounts, "bob@corp.example"))
    assert accounts.list_admins() == [bob]
    with pytest.raises(AuthenticationFailed):  # her tokens went with her
        accounts.authenticate(token)
    assert activities(storage)[-1] == (
        "deleted_admin",
        "bob@corp.example",
        {"admin_id": alice.id, "email": "alice@corp.example", "role": "admin"},
    )
    with pytest.raises(NotFound):
        accounts.delete_admin(alice.id, None)


def test_only_admins_delete_admins(accounts, alice) -> None:
    accounts.create_admin("mia@corp.example", PASSWORD, Role.MAINTAINER, None)
    with pytest.raises(AuthorizationFailed):
        accounts.delete_admin(alice.id, as_principal(accounts, "mia@corp.example"))


# --- signing in ------------------------------------------------------------------------------


def test_login_issues_a_24_hour_session_token(accounts, storage, alice, clock) -> None:
    issued = accounts.login(" ALICE@corp.example", PASSWORD, "10.0.0.1")
    assert isinstance(issued, IssuedToken)
    assert issued.token.startswith(SESSION_PREFIX) and len(issued.token) > 40
    assert issued.admin == alice and issued.expires_at == clock.now + timedelta(hours=24)
    with storage.transaction() as tx:
        record, _ = tx.admin_tokens.find(token_hash(issued.token))
    assert record.id == issued.token_id and record.kind is AdminTokenKind.SESSION
    principal = accounts.authenticate(issued.token)
    assert principal == Principal(admin=alice, token_id=issued.token_id, token_kind=AdminTokenKind.SESSION)
    assert principal.allows(Role.MAINTAINER)


def test_wrong_email_and_wrong_password_fail_alike(accounts, alice, hasher) -> None:
    failures = []
    for email, password in (("alice@corp.example", "wrong password!"), ("nobody@corp.example", PASSWORD)):
        hasher.verified.clear()
        with pytest.raises(AuthenticationFailed) as raised:
            accounts.login(email, password, "10.0.0.1")
        failures.append(raised.value.message)
        assert len(hasher.verified) == 1  # an unknown email is checked against a dummy hash too
    assert failures == [MESSAGE_WRONG_CREDENTIALS, MESSAGE_WRONG_CREDENTIALS]
    for email, password in (("", PASSWORD), ("alice@corp.example", ""), (None, None)):
        with pytest.raises(AuthenticationFailed, match="email or password is wrong"):
            accounts.login(email, password, None)


def test_five_failures_for_an_email_from_an_address_lock_it_there_for_15_minutes(
    accounts, alice, clock
) -> None:
    for n in range(5):
        with pytest.raises(AuthenticationFailed):
            accounts.login("alice@corp.example", f"wrong password {n}", "10.0.0.1")
        clock.advance(timedelta(minutes=1))
    # Locked for this email from this address, even with the right password.
    with pytest.raises(RateLimited) as raised:
        accounts.login("ALICE@corp.example", PASSWORD, "10.0.0.1")
    assert raised.value.retry_after == 10 * 60  # the first failure leaves the window in 10 minutes
    assert (
        raised.value.message
        == "Too many failed sign-ins for this email from this address. Try again in 10 minutes."
    )
    # Neither the admin from elsewhere nor the others behind the same address (a NAT, a proxy).
    accounts.login("alice@corp.example", PASSWORD, "10.0.0.2")
    bob = accounts.create_admin("bob@corp.example", PASSWORD, Role.OBSERVER, None)
    assert accounts.login("bob@corp.example", PASSWORD, "10.0.0.1").admin == bob
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    with pytest.raises(RateLimited):
        accounts.login("alice@corp.example", PASSWORD, "10.0.0.1")
    clock.advance(timedelta(seconds=1))
    accounts.login("alice@corp.example", PASSWORD, "10.0.0.1")


def test_an_address_failing_for_many_emails_is_locked(accounts, alice, clock) -> None:
    for n in range(MAX_FROM_ADDRESS):
        with pytest.raises(AuthenticationFailed):
            accounts.login(f"guess{n}@corp.example", PASSWORD, "203.0.113.7")
    with pytest.raises(RateLimited) as raised:
        accounts.login("alice@corp.example", PASSWORD, "203.0.113.7")
    assert raised.value.retry_after == 15 * 60
    assert raised.value.message.startswith("Too many failed sign-ins from this address.")
    accounts.login("alice@corp.example", PASSWORD, "203.0.113.8")  # another address may
    clock.advance(timedelta(minutes=15))
    accounts.login("alice@corp.example", PASSWORD, "203.0.113.7")


def test_concurrent_attempts_are_counted_before_any_password_is_hashed(storage, clock) -> None:
    """60 wrong passwords at once for one account from one address: five reach the hasher."""
    hasher = CountingHasher()
    accounts = AdminAccounts(storage, clock, hasher=hasher, hash_slots=HashSlots(slots=60))
    accounts.create_admin("alice@corp.example", PASSWORD, Role.ADMIN, None)
    hasher.verified.clear()
    barrier = threading.Barrier(60)

    def attempt(n: int) -> str:
        barrier.wait()
        try:
            accounts.login("alice@corp.example", f"wrong password {n}", "10.0.0.9")
        except RateLimited:
            return "limited"
        except AuthenticationFailed:
            return "wrong"
        return "signed in"

    with ThreadPoolExecutor(60) as pool:
        outcomes = list(pool.map(attempt, range(60)))
    assert outcomes.count("wrong") <= MAX_FAILURES
    assert outcomes.count("wrong") + outcomes.count("limited") == 60
    assert len(hasher.verified) == outcomes.count("wrong")
    with pytest.raises(RateLimited):
        accounts.login("alice@corp.example", PASSWORD, "10.0.0.9")


class SlowHasher(CountingHasher):
    """Records how many hashes run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def verify(self, hash, password) -> bool:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


def test_at_most_two_passwords_are_hashed_at_once(storage, clock) -> None:
    hasher = SlowHasher()
    accounts = AdminAccounts(storage, clock, hasher=hasher, hash_slots=HashSlots(slots=2, wait=30))
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(
            pool.map(
                lambda n: _outcome(accounts, f"user{n}@corp.example", f"10.1.0.{n}"),
                range(12),
            )
        )
    assert outcomes == ["wrong"] * 12
    assert hasher.most == 2


def test_a_sign_in_that_cannot_get_a_hash_slot_is_asked_to_retry_and_not_counted(storage, clock) -> None:
    slots = HashSlots(slots=1, wait=0.01)
    accounts = AdminAccounts(storage, clock, hasher=CountingHasher(), hash_slots=slots)
    accounts.create_admin("alice@corp.example", PASSWORD, Role.ADMIN, None)
    with slots.hold(), pytest.raises(RateLimited) as raised:  # another sign-in is hashing
        accounts.login("alice@corp.example", "wrong password", "10.0.0.1")
    assert raised.value.message == MESSAGE_BUSY and raised.value.retry_after == 1
    for _ in range(MAX_FAILURES - 1):  # the busy answer did not count as a failure
        with pytest.raises(AuthenticationFailed):
            accounts.login("alice@corp.example", "wrong password", "10.0.0.1")
    accounts.login("alice@corp.example", PASSWORD, "10.0.0.1")


def _outcome(accounts: AdminAccounts, email: str, client: str) -> str:
    try:
        accounts.login(email, "wrong password", client)
    except RateLimited:
        return "limited"
    except AuthenticationFailed:
        return "wrong"
    return "signed in"


def test_a_successful_sign_in_forgets_the_emails_failures(accounts, alice) -> None:
    for client in (None, "10.0.0.1"):
        for _ in range(4):
            with pytest.raises(AuthenticationFailed):
                accounts.login("alice@corp.example", "wrong password", client)
        accounts.login("alice@corp.example", PASSWORD, client)
        for _ in range(4):
            with pytest.raises(AuthenticationFailed):
                accounts.login("alice@corp.example", "wrong password", client)
        accounts.login("alice@corp.example", PASSWORD, client)


def test_login_rehashes_a_password_hashed_with_older_parameters(storage, clock) -> None:
    old = AdminAccounts(storage, clock, hasher=CountingHasher())
    old.create_admin("alice@corp.example", PASSWORD, Role.ADMIN, None)
    new = AdminAccounts(storage, clock, hasher=CountingHasher(time_cost=2))
    new.login("alice@corp.example", PASSWORD, None)
    with storage.transaction() as tx:
        _, stored = tx.admins.credentials("alice@corp.example")
    assert "t=2" in stored
    old.login("alice@corp.example", PASSWORD, None)  # a stronger hash still verifies


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "nonsense", SESSION_PREFIX + "x" * 43, API_PREFIX + "y" * 300, None])
def test_unknown_tokens_are_refused(accounts, alice, token) -> None:
    with pytest.raises(AuthenticationFailed, match="not valid"):
        accounts.authenticate(token)


def test_an_expired_session_is_refused(accounts, alice, clock) -> None:
    issued = accounts.login("alice@corp.example", PASSWORD, None)
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    accounts.authenticate(issued.token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed, match=r"expired on .* Sign in again"):
        accounts.authenticate(issued.token)


def test_logout_revokes_the_session(accounts, alice) -> None:
    issued = accounts.login("alice@corp.example", PASSWORD, None)
    other = accounts.login("alice@corp.example", PASSWORD, None)
    accounts.logout(accounts.authenticate(issued.token).token_id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        accounts.authenticate(issued.token)
    accounts.authenticate(other.token)


def test_last_used_is_written_at_most_once_a_minute(accounts, storage, alice, clock) -> None:
    issued = accounts.login("alice@corp.example", PASSWORD, None)
    first = clock.now

    def last_used():
        with storage.transaction() as tx:
            return tx.admin_tokens.get(issued.token_id).last_used_at

    accounts.authenticate(issued.token)
    assert last_used() == first
    clock.advance(timedelta(seconds=59))
    accounts.authenticate(issued.token)
    assert last_used() == first
    clock.advance(timedelta(seconds=1))
    accounts.authenticate(issued.token)
    assert last_used() == first + timedelta(minutes=1)


def test_api_tokens_never_expire_and_act_with_the_owners_role(accounts, storage, alice, clock) -> None:
    mia = accounts.create_admin("mia@corp.example", PASSWORD, Role.MAINTAINER, None)
    issued = accounts.create_api_token(mia.id, " deploy script ")
    assert issued.token.startswith(API_PREFIX) and issued.expires_at is None and issued.admin == mia
    clock.advance(timedelta(days=3650))
    principal = accounts.authenticate(issued.token)
    assert principal.token_kind is AdminTokenKind.API and principal.role is Role.MAINTAINER
    assert not principal.allows(Role.ADMIN)
    assert activities(storage)[-1] == (
        "created_api_token",
        "mia@corp.example",
        {"token_id": issued.token_id, "name": "deploy script", "owner": "mia@corp.example"},
    )
    [listed] = accounts.list_tokens(mia.id, kind=AdminTokenKind.API)
    assert listed.id == issued.token_id and listed.name == "deploy script"


def test_api_token_names_are_checked(accounts, alice) -> None:
    for name in ("", "   ", "x" * 101, "tab\there"):
        with pytest.raises(InvalidInput) as raised:
            accounts.create_api_token(alice.id, name)
        assert raised.value.field == "name"
    with pytest.raises(NotFound):
        accounts.create_api_token(alice.id + 100, "ci")


def test_list_tokens_shows_usable_ones_unless_asked(accounts, alice, clock) -> None:
    bob = accounts.create_admin("bob@corp.example", PASSWORD, Role.OBSERVER, None)
    session = accounts.login("alice@corp.example", PASSWORD, None)
    a = accounts.create_api_token(alice.id, "a")
    b = accounts.create_api_token(bob.id, "b")
    assert [t.id for t in accounts.list_tokens(None)] == [session.token_id, a.token_id, b.token_id]
    assert [t.id for t in accounts.list_tokens(bob.id)] == [b.token_id]
    clock.advance(timedelta(days=2))
    assert [t.id for t in accounts.list_tokens(alice.id)] == [a.token_id]
    assert [t.id for t in accounts.list_tokens(alice.id, active_only=False)] == [session.token_id, a.token_id]


def test_revoking_tokens(accounts, storage, alice) -> None:
    bob = accounts.create_admin("bob@corp.example", PASSWORD, Role.OBSERVER, None)
    carl = accounts.create_admin("carl@corp.example", PASSWORD, Role.MAINTAINER, None)
    bobs = accounts.create_api_token(bob.id, "bob's")
    carls = accounts.create_api_token(carl.id, "carl's")
    bob_principal = as_principal(accounts, "bob@corp.example")
    # Not someone else's, unless an admin.
    with pytest.raises(AuthorizationFailed, match="only its owner or an admin"):
        accounts.revoke_token(carls.token_id, bob_principal)
    revoked = accounts.revoke_token(bobs.token_id, bob_principal)
    assert revoked.revoked_at is not None and revoked.id == bobs.token_id
    with pytest.raises(AuthenticationFailed, match="revoked"):
        accounts.authenticate(bobs.token)
    accounts.revoke_token(carls.token_id, as_principal(accounts, "alice@corp.example"))
    with pytest.raises(AuthenticationFailed):
        accounts.authenticate(carls.token)
    # Twice is no error and no second activity; an unknown id is NotFound.
    accounts.revoke_token(carls.token_id, as_principal(accounts, "alice@corp.example"))
    with pytest.raises(NotFound):
        accounts.revoke_token(carls.token_id + 100, bob_principal)
    revocations = [a for a in activities(storage) if a[0] == "revoked_api_token"]
    assert revocations == [
        (
            "revoked_api_token",
            "bob@corp.example",
            {"token_id": bobs.token_id, "name": "bob's", "owner": "bob@corp.example"},
        ),
        (
            "revoked_api_token",
            "alice@corp.example",
            {"token_id": carls.token_id, "name": "carl's", "owner": "carl@corp.example"},
        ),
    ]


def test_the_default_hasher_is_argon2id(storage, clock) -> None:
    accounts = AdminAccounts(storage, clock)
    assert accounts._hasher.type.name == "ID"


def test_expired_sessions_are_forgotten_a_week_later(accounts, storage, alice, clock) -> None:
    old = accounts.login("alice@corp.example", PASSWORD, None)
    clock.advance(timedelta(days=2))
    accounts.login("alice@corp.example", PASSWORD, None)
    with pytest.raises(AuthenticationFailed, match="expired"):
        accounts.authenticate(old.token)
    clock.advance(timedelta(days=6))  # expired 7 days ago exactly: still kept
    accounts.login("alice@corp.example", PASSWORD, None)
    with storage.transaction() as tx:
        assert tx.admin_tokens.get(old.token_id) is not None
    clock.advance(timedelta(seconds=1))
    accounts.login("alice@corp.example", PASSWORD, None)
    with storage.transaction() as tx:
        assert tx.admin_tokens.get(old.token_id) is None
    with pytest.raises(AuthenticationFailed, match="not valid"):
        accounts.authenticate(old.token)
