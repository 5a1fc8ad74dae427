"""What an idle check-in costs the database, on SQLite and PostgreSQL (issue "check-in hot
path"): one read of the device's state, no inventory write when the device reports what is
stored, and no queue read when nothing waits; and what must still happen despite the shortcuts.
Counts of statements, never timings (those are in benchmarks/checkin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.services.conftest import SERVER, TENANT
from tests.services.test_management_proof import _host
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.protocol import syncml
from winmdm.protocol.syncml import StatusCode
from winmdm.runtime import Runtime


@pytest.fixture
def managed(client, entra, clock) -> ManagedDevice:
    """Enrolled, inventoried and On: its next sessions are idle check-ins."""
    device = WindowsDevice()
    token = entra.token(tenant_id=TENANT, audience=SERVER, issued_at=clock.now)
    device.enroll(client, SERVER + "/EnrollmentServer/Discovery.svc", email="alice@corp.example", token=token)
    managed = ManagedDevice(device)
    managed.session(client)
    return managed


@contextmanager
def _statements(runtime: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement: str, *_args) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"):
            seen.append(" ".join(statement.split()))

    engine = runtime.storage.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_an_idle_check_in_reads_once_and_writes_no_inventory(runtime, client, managed, clock) -> None:
    before = _host(runtime, managed)
    clock.advance(timedelta(hours=8))
    with _statements(runtime) as seen:
        log = managed.session(client)
    assert log.header_codes == [StatusCode.OK] and log.received == []
    reads = [s for s in seen if s.startswith("SELECT")]
    writes = [s for s in seen if not s.startswith("SELECT")]
    assert len(reads) == 1 and "FROM enrollments JOIN hosts" in reads[0]
    assert not any("UPDATE hosts SET serial" in s for s in writes)  # DevInfo as stored: no write
    # The new nonce, last seen and the session: one statement on PostgreSQL (UPDATEs in WITH).
    assert len(writes) == (1 if runtime.storage.engine.dialect.name == "postgresql" else 3)
    after = _host(runtime, managed)
    assert after.updated_at == before.updated_at and after.last_seen_at > before.last_seen_at


def test_a_changed_devinfo_is_still_recorded(runtime, client, managed) -> None:
    swapped = syncml.Replace(cmd_id=4, items=(syncml.Item(source="./DevInfo/Lang", data="de-DE"),))
    managed.session(client, extra=(swapped,))
    host_id = _host(runtime, managed).id
    with runtime.storage.transaction() as tx:
        assert tx.inventory.get_inventory(host_id).language == "de-DE"
