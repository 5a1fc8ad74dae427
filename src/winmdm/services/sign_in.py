"""The admin sign-in limit, and the bound on password hashing (docs/api.md "Signing in").

- Attempts are counted per email **and** client address: five failures for alice@ from one
  address lock alice@ there for 15 minutes, not alice@ everywhere (anyone could lock an admin out)
  nor everyone behind that address (an office NAT or a proxy). One address failing for many
  emails (spraying) is locked after MAX_FROM_ADDRESS failures in the window.
- An attempt is written, and counted, before its password is hashed, in transactions of its own,
  so concurrent attempts see each other: however many arrive at once, at most MAX_FAILURES per
  email and address reach the hasher in a window.
- argon2id costs 64 MiB and tens of milliseconds per hash: at most HASH_SLOTS hash at once in a
  process; a sign-in that waits longer than HASH_WAIT for a slot is told to try again shortly.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from winmdm.errors import RateLimited

if TYPE_CHECKING:
    from winmdm.metrics import Metrics
    from winmdm.storage.protocols import Storage, Transaction

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5  # per email and client address, within FAILURE_WINDOW
MAX_FROM_ADDRESS = 50  # per client address, any email, within FAILURE_WINDOW
HASH_SLOTS = 2
HASH_WAIT = 5.0  # seconds

MESSAGE_BUSY = "The server is busy checking other sign-ins. Try again in a few seconds."


class SignInLimit:
    def __init__(
        self, storage: Storage, clock: Callable[[], datetime], *, metrics: Metrics | None = None
    ) -> None:
        """`metrics`: refused sign-ins are counted there (wrong_credentials, rate_limited), so
        an operator sees password guessing without reading the database."""
        self._storage = storage
        self._clock = clock
        self._metrics = metrics

    def admit(self, email: str, client: str | None) -> int:
        """Record an attempt and let it go on to the password check; its id. RateLimited (and
        nothing recorded) when the email, from this address, or the address, is locked."""
        now = self._clock()
        try:
            with self._storage.transaction() as tx:
                self._check(tx, email, client, now, own=False)  # the locked-out go no further
            with self._storage.transaction() as tx:
                attempt = tx.login_failures.add(email, client, at=now)
            with self._storage.transaction() as tx:  # now every attempt committed before counts
                try:
                    self._check(tx, email, client, now, own=True)
                except RateLimited:
                    tx.login_failures.remove(attempt)
                    raise
        except RateLimited:
            self._count("rate_limited")
            raise
        return attempt

    def failed(self) -> None:
        """The attempt stays as a failure; old ones are forgotten."""
        self._count("wrong_credentials")
        with self._storage.transaction() as tx:
            tx.login_failures.purge(self._clock() - FAILURE_WINDOW)

    def _count(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.login_failed(reason)

    def withdraw(self, attempt: int) -> None:
        """The password was never checked (the server was busy): not a failure."""
        with self._storage.transaction() as tx:
            tx.login_failures.remove(attempt)

    @staticmethod
    def succeeded(tx: Transaction, email: str, client: str | None) -> None:
        """Signed in: the email's attempts from this address are forgotten."""
        tx.login_failures.clear(email, client)

    @staticmethod
    def _check(tx: Transaction, email: str, client: str | None, now: datetime, *, own: bool) -> None:
        since = now - FAILURE_WINDOW + timedelta(microseconds=1)  # a failure ages out at exactly 15 min
        extra = 1 if own else 0  # the attempt being counted is one of them
        locks = (
            (email, client, MAX_FAILURES, "for this email from this address"),
            (None, client, MAX_FROM_ADDRESS, "from this address"),
        )
        for lock_email, lock_client, limit, what in reversed(locks):  # the broader lock speaks first
            if lock_email is None and not lock_client:
                continue
            times = tx.login_failures.recent(
                since=since, email=lock_email, client=lock_client, limit=limit + extra
            )
            if len(times) >= limit + extra:
                # Allowed again once the oldest of the last ones leaves the window.
                wait = (times[limit + extra - 1] + FAILURE_WINDOW - now).total_seconds()
                retry_after = max(1, math.ceil(wait))
                minutes = max(1, math.ceil(retry_after / 60))
                plural = "s" if minutes != 1 else ""
                raise RateLimited(
                    f"Too many failed sign-ins {what}. Try again in {minutes} minute{plural}.",
                    retry_after=retry_after,
                )


class HashSlots:
    """At most `slots` password hashes at once in this process."""

    def __init__(self, slots: int = HASH_SLOTS, wait: float = HASH_WAIT) -> None:
        self._semaphore = threading.BoundedSemaphore(slots)
        self._wait = wait

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=self._wait):
            raise RateLimited(MESSAGE_BUSY, retry_after=max(1, math.ceil(self._wait)))
        try:
            yield
        finally:
            self._semaphore.release()
