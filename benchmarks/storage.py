"""Store calls per second: an enrollment's transaction and an idle check-in's, on each backend.

    python benchmarks/storage.py [--database sqlite|postgresql://...]... [--iterations N]

No HTTP, no crypto, no SyncML: only the store calls the services make, in the same transactions,
so the figures are what the storage layer (SQLAlchemy Core + driver + database) costs them.

- **enroll (new host)**: `EnrollmentService.enroll` for a device never seen: find_known (miss),
  hosts.create, enrollments.add, certificates.add.
- **re-enroll**: the same device again: find_known (hit), record_enrollment,
  deactivate_for_host, enrollments.add, revoke_active_for_host, certificates.add.
- **cert auth**: `CertificateService.authenticate` for an already used certificate:
  certificates.get, mark_first_use (no-op), certificates.get.
- **check-in**: the transaction of one idle OMA-DM message (`ManagementService.handle`, first
  message of a session): find_active_by_device_id, hosts.get, sessions.get, set_nonce,
  next_for_host, inventory.checked_in, sessions.save.

Each figure is the best of `--rounds` rounds of `--iterations` transactions (less noise from other
load on the machine); `statements` is how many statements one transaction runs through
SQLAlchemy's cursor execution (COMMIT never, BEGIN only where it is sent as a statement).
With a postgresql:// URL a throwaway database is created on that server and dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from winmdm.domain.management import MDMSession  # noqa: E402
from winmdm.domain.models import (  # noqa: E402
    CertificateStatus,
    DeviceCertificate,
    EnrollmentType,
    MDMStatus,
    NewEnrollment,
    NewHost,
    TokenKind,
)
from winmdm.storage import SQLStorage, create_engine_for, migrate  # noqa: E402

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DER = secrets.token_bytes(1100)  # about the size of a device certificate
CONTEXT = (
    ("UXInitiated", "true"),
    ("HWDevID", "x"),
    ("DeviceName", "DESKTOP"),
    ("OSVersion", "10.0.22631.4460"),
    ("MAC", "00-11-22-33-44-55"),
)


class Bench:
    def __init__(self, storage: SQLStorage) -> None:
        self.storage = storage
        self.n = 0
        self.devices: list[tuple[str, str, str]] = []  # device_id, hw_dev_id, serial

    def _certificate(self, host_id: int, enrollment_id: int, serial: str) -> DeviceCertificate:
        return DeviceCertificate(
            serial=serial,
            host_id=host_id,
            enrollment_id=enrollment_id,
            thumbprint=secrets.token_hex(20).upper(),
            subject="DEV",
            not_before=T0,
            not_after=T0 + timedelta(days=365),
            der=DER,
            status=CertificateStatus.ACTIVE,
        )

    def _enrollment(self, host_id: int, device_id: str, hw: str) -> NewEnrollment:
        return NewEnrollment(
            host_id=host_id,
            device_id=device_id,
            hw_dev_id=hw,
            enrollment_type=EnrollmentType.FULL,
            not_in_oobe=True,
            ux_initiated=True,
            device_name="DESKTOP",
            os_version="10.0.22631.4460",
            os_edition="Enterprise",
            domain_name=None,
            upn="alice@corp.example",
            token_kind=TokenKind.ENTRA_JWT,
            context=CONTEXT,
            dm_username=device_id,
            dm_password_digest="digest",
            dm_server_secret="secret",
            dm_nonce="bm9uY2U=",
            created_at=T0,
        )

    def enroll_new(self) -> None:
        self.n += 1
        device_id, hw, serial = f"DEV-{self.n}", f"HW-{self.n}", secrets.token_hex(16)
        with self.storage.transaction() as tx:
            assert tx.hosts.find_known(hw_dev_id=hw, device_id=device_id) is None
            host = tx.hosts.create(
                NewHost(
                    uuid=f"{self.n:08d}-0000-4000-8000-{secrets.token_hex(6)}",
                    display_name="DESKTOP",
                    hw_dev_id=hw,
                    device_id=device_id,
                    os_version="10.0.22631.4460",
                    os_edition="Enterprise",
                    idp_username="alice@corp.example",
                    created_at=T0,
                )
            )
            enrollment = tx.enrollments.add(self._enrollment(host.id, device_id, hw))
            tx.certificates.add(self._certificate(host.id, enrollment.id, serial))
        self.devices.append((device_id, hw, serial))

    def reenroll(self, i: int) -> None:
        device_id, hw, _ = self.devices[i % len(self.devices)]
        with self.storage.transaction() as tx:
            known = tx.hosts.find_known(hw_dev_id=hw, device_id=device_id)
            assert known is not None
            host = tx.hosts.record_enrollment(
                known.id,
                display_name="DESKTOP",
                hw_dev_id=hw,
                device_id=device_id,
                os_version="10.0.22631.4460",
                os_edition=None,
                idp_username="alice@corp.example",
                mdm_status=MDMStatus.PENDING,
                at=T0,
            )
            tx.enrollments.deactivate_for_host(host.id)
            enrollment = tx.enrollments.add(self._enrollment(host.id, device_id, hw))
            tx.certificates.revoke_active_for_host(host.id, T0, "superseded by re-enrollment")
            serial = secrets.token_hex(16)
            tx.certificates.add(self._certificate(host.id, enrollment.id, serial))
        self.devices[i % len(self.devices)] = (device_id, hw, serial)

    def cert_auth(self, i: int) -> None:
        _, _, serial = self.devices[i % len(self.devices)]
        with self.storage.transaction() as tx:
            record = tx.certificates.get(serial)
            assert record is not None
            tx.certificates.mark_first_use(serial, T0)
            tx.certificates.get(serial)

    def checkin(self, i: int) -> None:
        device_id, _, _ = self.devices[i % len(self.devices)]
        now = T0 + timedelta(seconds=i)
        with self.storage.transaction() as tx:
            enrollment = tx.enrollments.find_active_by_device_id(device_id)
            assert enrollment is not None
            host = tx.hosts.get(enrollment.host_id)
            assert host is not None
            session = tx.sessions.get(host.id)
            if session is None:
                session = MDMSession(
                    host_id=host.id,
                    session_id=str(i),
                    client_msg_id=0,
                    server_msg_id=0,
                    last_response=None,
                    authenticated=False,
                    started_at=now,
                    updated_at=now,
                )
            tx.enrollments.set_nonce(enrollment.id, secrets.token_hex(8))
            assert tx.commands.next_for_host(host.id, str(i)) == []
            tx.inventory.checked_in(host.id, now)
            tx.sessions.save(
                MDMSession(
                    host_id=host.id,
                    session_id=str(i),
                    client_msg_id=1,
                    server_msg_id=1,
                    last_response=b"<SyncML>" + b"x" * 600 + b"</SyncML>",
                    authenticated=True,
                    sent={},
                    started_at=session.started_at,
                    updated_at=now,
                )
            )


def _count_statements(engine: sa.Engine, run: Callable[[], None]) -> int:
    count = 0

    def before(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", before)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return count


def _best(run: Callable[[int], None], iterations: int, rounds: int) -> float:
    best = float("inf")
    offset = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(offset, offset + iterations):
            run(i)
        best = min(best, (time.perf_counter() - start) / iterations)
        offset += iterations
    return best


@contextlib.contextmanager
def _database(choice: str, tmp: Path) -> Iterator[tuple[str, str]]:
    if choice == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}", "SQLite (file, WAL)"
        return
    import psycopg

    admin = sa.make_url(choice).set(drivername="postgresql")
    name = f"winmdm_storage_bench_{secrets.token_hex(4)}"
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name)
        yield url.render_as_string(hide_password=False), f"PostgreSQL ({url.host}:{url.port or 5432}/{name})"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(choice: str, iterations: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, _database(choice, Path(tmp)) as (url, label):
        engine = create_engine_for(url)
        migrate(engine)
        storage = SQLStorage(engine)
        bench = Bench(storage)
        try:
            for _ in range(50):  # warm-up: statement caches, pool, page cache
                bench.enroll_new()
            print(f"\n{label}: best of {rounds} rounds x {iterations} transactions")
            cases: list[tuple[str, Callable[[int], None]]] = [
                ("enroll (new host)", lambda _i: bench.enroll_new()),
                ("re-enroll", bench.reenroll),
                ("cert auth", bench.cert_auth),
                ("check-in", bench.checkin),
            ]
            timed = []
            for name, case in cases:
                case(0)  # warm-up of this case's statements
                timed.append((name, case, _best(case, iterations, rounds)))
            # Counted after timing: an event listener, once added, slows every later statement.
            for name, case, seconds in timed:
                statements = _count_statements(engine, lambda case=case: case(1))
                print(
                    f"  {name:<18} {seconds * 1e6:8.0f} µs  {1 / seconds:8.0f} /s   {statements} statements"
                )
        finally:
            storage.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        action="append",
        help="'sqlite' (default) or a postgresql:// URL of a server for a throwaway database; repeatable",
    )
    parser.add_argument("--iterations", type=int, default=2000, help="transactions per round (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case, best is shown (3)")
    args = parser.parse_args(argv)
    for choice in args.database or ["sqlite"]:
        run(choice, args.iterations, args.rounds)


if __name__ == "__main__":
    main()
