"""The storage contract: every backend behaves the same (design.md §3).

Each test runs on SQLite and PostgreSQL through the `storage` fixture (tests/conftest.py).
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from winmdm.domain.models import (
    CertificateStatus,
    DeviceCertificate,
    EnrollmentType,
    MDMStatus,
    NewEnrollment,
    NewHost,
    TokenKind,
)
from winmdm.errors import EnrollmentServerError, NotFound
from winmdm.storage.protocols import iter_protocols
from winmdm.storage.schema import teams
from winmdm.storage.sql import (
    DuplicateSerial,
    SQLCertificateStore,
    SQLEnrollmentStore,
    SQLHostStore,
    SQLStorage,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def new_host(**changes: object) -> NewHost:
    base = NewHost(
        uuid="6f1c2b7e-0000-4000-8000-000000000001",
        display_name="DESKTOP-ALICE",
        hw_dev_id="A1B2C3",
        device_id="DEV-1",
        os_version="10.0.22631.4460",
        os_edition="Enterprise",
        idp_username="alice@corp.example",
        created_at=T0,
    )
    return replace(base, **changes)


NEW_ENROLLMENT_FIELDS = (
    *("host_id", "device_id", "hw_dev_id", "enrollment_type", "not_in_oobe", "ux_initiated"),
    *("device_name", "os_version", "os_edition", "domain_name", "upn", "token_kind"),
    *("dm_username", "dm_password_digest", "dm_server_secret", "dm_nonce", "created_at"),
)


def new_enrollment(host_id: int, **changes: object) -> NewEnrollment:
    base = NewEnrollment(
        host_id=host_id,
        device_id="DEV-1",
        hw_dev_id="A1B2C3",
        enrollment_type=EnrollmentType.FULL,
        not_in_oobe=True,
        ux_initiated=True,
        device_name="DESKTOP-ALICE",
        os_version="10.0.22631.4460",
        os_edition="Enterprise",
        domain_name=None,
        upn="alice@corp.example",
        token_kind=TokenKind.ENTRA_JWT,
        context=(
            ("UXInitiated", "true"),
            ("MAC", "00-11-22-33-44-55"),
            ("HWDevID", "A1B2C3"),
            ("MAC", "66-77-88-99-AA-BB"),
            ("DeviceName", "DESKTOP-ALICE"),
        ),
        dm_username="dm-user",
        dm_password_digest="ZGlnZXN0",
        dm_server_secret="server-secret",
        dm_nonce="bm9uY2U=",
        created_at=T0,
        extra={"note": "kept"},
    )
    return replace(base, **changes)


def certificate(host_id: int, enrollment_id: int, serial: str, **changes: object):
    base = DeviceCertificate(
        serial=serial,
        host_id=host_id,
        enrollment_id=enrollment_id,
        thumbprint="AB" * 20,
        subject="CN=DEV-1",
        not_before=T0,
        not_after=T0 + timedelta(days=365),
        der=b"\x30\x82\x00\x00\xff\x00binary",
        status=CertificateStatus.ACTIVE,
    )
    return replace(base, **changes)


def enrolled(storage: SQLStorage) -> tuple[int, int]:
    """A host with one enrollment; returns (host_id, enrollment_id)."""
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        enrollment = tx.enrollments.add(new_enrollment(host.id))
    return host.id, enrollment.id


def test_every_protocol_method_is_implemented() -> None:
    implementations = {
        "HostStore": SQLHostStore,
        "EnrollmentStore": SQLEnrollmentStore,
        "CertificateStore": SQLCertificateStore,
    }
    for protocol in iter_protocols():
        impl = implementations[protocol.__name__]
        for name, member in vars(protocol).items():
            if name.startswith("_") or not callable(member):
                continue
            assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
            assert list(inspect.signature(getattr(impl, name)).parameters) == list(
                inspect.signature(member).parameters
            ), f"{impl.__name__}.{name} signature differs from {protocol.__name__}"


def test_backend_is_the_one_in_the_test_id(storage: SQLStorage, database_kind: str) -> None:
    """Guards the rule that the PostgreSQL run really runs on PostgreSQL (design.md §3)."""
    assert storage.engine.dialect.name == database_kind


# --- hosts -----------------------------------------------------------------------------------


def test_create_and_get_host(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        created = tx.hosts.create(new_host(serial="SN-1"))
    assert created.id > 0
    assert created.mdm_status is MDMStatus.PENDING
    assert created.team_id is None
    assert created.updated_at == created.created_at == T0
    assert created.last_seen_at is None
    with storage.transaction() as tx:
        assert tx.hosts.get(created.id) == created
        assert tx.hosts.get(created.id + 1000) is None
    assert created.serial == "SN-1"
    assert created.uuid == new_host().uuid


def test_host_uuid_is_unique(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        tx.hosts.create(new_host())
    with pytest.raises(sa.exc.IntegrityError), storage.transaction() as tx:
        tx.hosts.create(new_host(hw_dev_id="OTHER"))


def test_find_known_prefers_hardware_id(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        by_hw = tx.hosts.create(new_host(uuid="u-hw", hw_dev_id="HW-1", device_id="DEV-X"))
        by_dev = tx.hosts.create(new_host(uuid="u-dev", hw_dev_id="HW-2", device_id="DEV-1"))
    with storage.transaction() as tx:
        assert tx.hosts.find_known(hw_dev_id="HW-1", device_id="DEV-1") == by_hw
        assert tx.hosts.find_known(hw_dev_id="HW-unknown", device_id="DEV-1") == by_dev
        assert tx.hosts.find_known(hw_dev_id=None, device_id="DEV-1") == by_dev
        assert tx.hosts.find_known(hw_dev_id="HW-2", device_id=None) == by_dev
        assert tx.hosts.find_known(hw_dev_id="HW-unknown", device_id="DEV-unknown") is None


def test_find_known_hardware_id_wins_over_an_older_device_id_match(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        older_by_dev = tx.hosts.create(new_host(uuid="u-dev", hw_dev_id="HW-2", device_id="DEV-1"))
        by_hw = tx.hosts.create(new_host(uuid="u-hw", hw_dev_id="HW-1", device_id="DEV-X"))
        tx.hosts.create(new_host(uuid="u-hw-newer", hw_dev_id="HW-1", device_id="DEV-Y"))
        tx.hosts.create(new_host(uuid="u-dev-newer", hw_dev_id="HW-3", device_id="DEV-1"))
    with storage.transaction() as tx:
        assert tx.hosts.find_known(hw_dev_id="HW-1", device_id="DEV-1") == by_hw
        # Several matches of the same kind: the oldest host.
        assert tx.hosts.find_known(hw_dev_id="HW-1", device_id=None) == by_hw
        assert tx.hosts.find_known(hw_dev_id="", device_id="DEV-1") == older_by_dev


def test_find_known_never_matches_missing_identifiers(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        tx.hosts.create(new_host(uuid="u-1", hw_dev_id=None, device_id=None))
        tx.hosts.create(new_host(uuid="u-2", hw_dev_id="", device_id=""))
    with storage.transaction() as tx:
        assert tx.hosts.find_known(hw_dev_id=None, device_id=None) is None
        assert tx.hosts.find_known(hw_dev_id="", device_id="") is None
        assert tx.hosts.find_known(hw_dev_id="", device_id=None) is None


def _record(tx, host_id: int, **changes: object):
    values: dict[str, object] = {
        "display_name": "DESKTOP-NEW",
        "hw_dev_id": None,
        "device_id": None,
        "os_version": None,
        "os_edition": None,
        "idp_username": None,
        "mdm_status": MDMStatus.ON,
        "at": T0 + timedelta(hours=1),
    }
    values.update(changes)
    return tx.hosts.record_enrollment(host_id, **values)


def test_record_enrollment_keeps_team_and_stored_values(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        team_id = tx.connection.execute(
            teams.insert().values(name="Workstations", created_at=T0).returning(teams.c.id)
        ).scalar_one()
        host = tx.hosts.create(new_host(team_id=team_id, serial="SN-1"))
    with storage.transaction() as tx:
        updated = _record(tx, host.id)
    assert updated.team_id == team_id
    assert updated.display_name == "DESKTOP-NEW"
    assert updated.mdm_status is MDMStatus.ON
    assert updated.updated_at == T0 + timedelta(hours=1)
    assert updated.created_at == host.created_at
    # None keeps what was stored.
    for name in ("hw_dev_id", "device_id", "os_version", "os_edition", "idp_username", "serial"):
        assert getattr(updated, name) == getattr(host, name), name
    with storage.transaction() as tx:
        assert tx.hosts.get(host.id) == updated


def test_record_enrollment_replaces_given_values(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        updated = _record(
            tx,
            host.id,
            hw_dev_id="HW-NEW",
            device_id="DEV-NEW",
            os_version="10.0.26100.1",
            os_edition="Professional",
            idp_username="bob@corp.example",
            mdm_status=MDMStatus.PENDING,
        )
    assert (updated.hw_dev_id, updated.device_id) == ("HW-NEW", "DEV-NEW")
    assert (updated.os_version, updated.os_edition) == ("10.0.26100.1", "Professional")
    assert updated.idp_username == "bob@corp.example"
    assert updated.mdm_status is MDMStatus.PENDING
    assert updated.team_id is None


def test_record_enrollment_of_unknown_host_is_not_found(storage: SQLStorage) -> None:
    with pytest.raises(NotFound), storage.transaction() as tx:
        _record(tx, 424242)


# --- enrollments -----------------------------------------------------------------------------


def test_enrollment_round_trip_keeps_context_order_and_repeats(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        added = tx.enrollments.add(new_enrollment(host.id))
    wanted = new_enrollment(host.id)
    assert added.active is True
    assert added.context == wanted.context
    assert [name for name, _ in added.context].count("MAC") == 2
    for name in NEW_ENROLLMENT_FIELDS:
        assert getattr(added, name) == getattr(wanted, name), name
    assert added.enrollment_type is EnrollmentType.FULL
    assert added.token_kind is TokenKind.ENTRA_JWT
    with storage.transaction() as tx:
        assert tx.enrollments.get(added.id) == added
        assert tx.enrollments.get(added.id + 1000) is None


def test_enrollment_nullable_flags_and_empty_context(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        added = tx.enrollments.add(
            new_enrollment(
                host.id,
                not_in_oobe=None,
                ux_initiated=False,
                context=(),
                enrollment_type=EnrollmentType.DEVICE,
                token_kind=TokenKind.RENEWAL,
                hw_dev_id=None,
            )
        )
    with storage.transaction() as tx:
        got = tx.enrollments.get(added.id)
    assert got == added
    assert got.not_in_oobe is None and got.ux_initiated is False
    assert got.context == ()
    assert got.enrollment_type is EnrollmentType.DEVICE and got.token_kind is TokenKind.RENEWAL


def test_active_deactivate_and_list(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        other = tx.hosts.create(new_host(uuid="u-other", hw_dev_id="HW-O", device_id="DEV-O"))
        assert tx.enrollments.active_for_host(host.id) is None
        first = tx.enrollments.add(new_enrollment(host.id))
        tx.enrollments.add(new_enrollment(other.id))
        assert tx.enrollments.active_for_host(host.id) == first
    with storage.transaction() as tx:
        assert tx.enrollments.deactivate_for_host(host.id) == 1
        assert tx.enrollments.deactivate_for_host(host.id) == 0
        assert tx.enrollments.active_for_host(host.id) is None
        second = tx.enrollments.add(
            new_enrollment(host.id, created_at=T0 + timedelta(days=1), dm_nonce="bmV3")
        )
        assert tx.enrollments.active_for_host(host.id) == second
    with storage.transaction() as tx:
        listed = tx.enrollments.list_for_host(host.id)
        assert [e.id for e in listed] == [first.id, second.id]
        assert [e.active for e in listed] == [False, True]
        assert tx.enrollments.active_for_host(other.id) is not None
        assert tx.enrollments.list_for_host(424242) == []


def test_enrollment_needs_a_real_host(storage: SQLStorage) -> None:
    with pytest.raises(sa.exc.IntegrityError), storage.transaction() as tx:
        tx.enrollments.add(new_enrollment(424242))


# --- certificates ----------------------------------------------------------------------------


def test_certificate_round_trip(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    cert = certificate(host_id, enrollment_id, "0a1b2c", replaces_serial="09ffee")
    with storage.transaction() as tx:
        assert tx.certificates.add(cert) == cert
    with storage.transaction() as tx:
        got = tx.certificates.get("0a1b2c")
        assert tx.certificates.get("missing") is None
    assert got == cert
    assert isinstance(got.der, bytes) and got.der == cert.der
    assert got.status is CertificateStatus.ACTIVE


def test_duplicate_serial_raises_and_keeps_transaction_usable(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    with storage.transaction() as tx:
        tx.certificates.add(certificate(host_id, enrollment_id, "0a"))
    with storage.transaction() as tx:
        with pytest.raises(DuplicateSerial) as raised:
            tx.certificates.add(certificate(host_id, enrollment_id, "0a", subject="CN=other"))
        assert isinstance(raised.value, EnrollmentServerError)
        # The transaction goes on after the clash.
        tx.certificates.add(certificate(host_id, enrollment_id, "0b"))
    with storage.transaction() as tx:
        assert tx.certificates.get("0a").subject == "CN=DEV-1"
        assert [c.serial for c in tx.certificates.list_for_host(host_id)] == ["0a", "0b"]


def test_list_for_host_orders_by_not_before_then_insertion(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    with storage.transaction() as tx:
        other = tx.hosts.create(new_host(uuid="u-other", hw_dev_id="HW-O", device_id="DEV-O"))
        later = T0 + timedelta(days=30)
        tx.certificates.add(certificate(host_id, enrollment_id, "03", not_before=later))
        tx.certificates.add(certificate(host_id, enrollment_id, "02"))
        tx.certificates.add(certificate(host_id, enrollment_id, "01"))
        tx.certificates.add(certificate(other.id, enrollment_id, "04"))
    with storage.transaction() as tx:
        assert [c.serial for c in tx.certificates.list_for_host(host_id)] == ["02", "01", "03"]
        assert [c.serial for c in tx.certificates.list_for_host(other.id)] == ["04"]
        assert tx.certificates.list_for_host(424242) == []


def test_mark_first_use_only_once(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    first, second = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    with storage.transaction() as tx:
        tx.certificates.add(certificate(host_id, enrollment_id, "0a"))
        assert tx.certificates.mark_first_use("0a", first) is True
    with storage.transaction() as tx:
        assert tx.certificates.mark_first_use("0a", second) is False
        assert tx.certificates.mark_first_use("missing", second) is False
    with storage.transaction() as tx:
        assert tx.certificates.get("0a").first_used_at == first


def test_revoke_only_from_active(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    at, later = T0 + timedelta(days=1), T0 + timedelta(days=2)
    with storage.transaction() as tx:
        tx.certificates.add(certificate(host_id, enrollment_id, "0a"))
        assert tx.certificates.revoke("0a", at, "superseded") is True
        assert tx.certificates.revoke("0a", later, "again") is False
        assert tx.certificates.revoke("missing", later, "nothing") is False
    with storage.transaction() as tx:
        got = tx.certificates.get("0a")
    assert got.status is CertificateStatus.REVOKED
    assert (got.revoked_at, got.revoked_reason) == (at, "superseded")


def test_revoke_active_for_host_keeps_one(storage: SQLStorage) -> None:
    host_id, enrollment_id = enrolled(storage)
    at = T0 + timedelta(days=1)
    with storage.transaction() as tx:
        other = tx.hosts.create(new_host(uuid="u-other", hw_dev_id="HW-O", device_id="DEV-O"))
        for serial in ("01", "02", "03"):
            tx.certificates.add(certificate(host_id, enrollment_id, serial))
        tx.certificates.add(certificate(other.id, enrollment_id, "09"))
        assert tx.certificates.revoke("01", at, "earlier") is True
    with storage.transaction() as tx:
        assert tx.certificates.revoke_active_for_host(host_id, at, "renewed", keep="03") == 1
        assert tx.certificates.revoke_active_for_host(host_id, at, "renewed", keep="03") == 0
    with storage.transaction() as tx:
        by_serial = {c.serial: c for c in tx.certificates.list_for_host(host_id)}
        assert by_serial["01"].revoked_reason == "earlier"
        assert by_serial["02"].status is CertificateStatus.REVOKED
        assert by_serial["02"].revoked_reason == "renewed"
        assert by_serial["03"].status is CertificateStatus.ACTIVE
        assert tx.certificates.get("09").status is CertificateStatus.ACTIVE
        assert tx.certificates.revoke_active_for_host(host_id, at, "unenrolled") == 1
        assert tx.certificates.get("03").status is CertificateStatus.REVOKED


# --- datetimes and transactions --------------------------------------------------------------


def test_aware_datetimes_round_trip_as_utc(storage: SQLStorage) -> None:
    paris = timezone(timedelta(hours=2))
    created = datetime(2025, 6, 1, 14, 30, 15, 654321, tzinfo=paris)
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host(created_at=created))
    with storage.transaction() as tx:
        got = tx.hosts.get(host.id)
    assert got.created_at == created
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.created_at.hour == 12 and got.created_at.microsecond == 654321


def test_naive_datetimes_are_refused(storage: SQLStorage) -> None:
    with pytest.raises(sa.exc.StatementError) as raised, storage.transaction() as tx:
        tx.hosts.create(new_host(created_at=datetime(2025, 1, 1)))
    assert isinstance(raised.value.orig, ValueError)


def test_rollback_on_exception_writes_nothing(storage: SQLStorage) -> None:
    with pytest.raises(RuntimeError, match="boom"), storage.transaction() as tx:
        host = tx.hosts.create(new_host())
        enrollment = tx.enrollments.add(new_enrollment(host.id))
        tx.certificates.add(certificate(host.id, enrollment.id, "0a"))
        raise RuntimeError("boom")
    with storage.transaction() as tx:
        assert tx.hosts.find_known(hw_dev_id="A1B2C3", device_id="DEV-1") is None
        assert tx.hosts.get(host.id) is None
        assert tx.enrollments.get(enrollment.id) is None
        assert tx.certificates.get("0a") is None


def test_commit_is_visible_to_a_new_transaction(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        host = tx.hosts.create(new_host())
    with storage.transaction() as tx:
        assert tx.hosts.find_known(hw_dev_id="A1B2C3", device_id=None) == host


def test_list_ids_by_team_and_status(storage: SQLStorage) -> None:
    from winmdm.storage.schema import hosts as hosts_table
    from winmdm.storage.schema import teams

    with storage.transaction() as tx:
        team = tx.connection.execute(
            teams.insert().values(name="Finance", created_at=T0)
        ).inserted_primary_key[0]
        on = tx.hosts.create(new_host(uuid="l-1", hw_dev_id="L1", device_id="LD1")).id
        pending = tx.hosts.create(new_host(uuid="l-2", hw_dev_id="L2", device_id="LD2")).id
        in_team = tx.hosts.create(new_host(uuid="l-3", hw_dev_id="L3", device_id="LD3")).id
        off = tx.hosts.create(new_host(uuid="l-4", hw_dev_id="L4", device_id="LD4")).id
        tx.inventory.set_mdm_status(on, MDMStatus.ON, T0)
        tx.inventory.set_mdm_status(off, MDMStatus.OFF, T0)
        tx.inventory.set_mdm_status(in_team, MDMStatus.ON, T0)
        tx.connection.execute(hosts_table.update().where(hosts_table.c.id == in_team).values(team_id=team))
    with storage.transaction() as tx:
        enrolled = (MDMStatus.ON, MDMStatus.PENDING)
        assert tx.hosts.list_ids(team_id=None, mdm_statuses=enrolled) == sorted([on, pending])
        assert tx.hosts.list_ids(team_id=team, mdm_statuses=enrolled) == [in_team]
        assert tx.hosts.list_ids(team_id=None, mdm_statuses=(MDMStatus.OFF,)) == [off]
        assert tx.hosts.list_ids(team_id=None, mdm_statuses=()) == []
