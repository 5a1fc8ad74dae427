"""The one SQL implementation of the store protocols (SQLAlchemy Core, SQLite and PostgreSQL).

Every store is bound to the connection of one transaction, so a service's writes (host,
enrollment, certificate) land together or not at all. Rows come back as the frozen domain
dataclasses; nothing outside the sql*.py modules sees a SQLAlchemy row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from winmdm.domain.models import (
    CertificateStatus,
    DeviceCertificate,
    Enrollment,
    Host,
    MDMStatus,
    NewEnrollment,
    NewHost,
)
from winmdm.errors import EnrollmentServerError, NotFound
from winmdm.storage.schema import device_certificates, enrollments, hosts
from winmdm.storage.sql_commands import SQLCommandQueue, SQLSessionStore
from winmdm.storage.sql_management import (
    SQLActivityStore,
    SQLAgentStore,
    SQLInventoryStore,
    SQLProfileStore,
)
from winmdm.storage.sql_rows import host_from_row, identifier


class DuplicateSerial(EnrollmentServerError):
    """A certificate with this serial is already stored.

    Serials are random and issued by winmdm's CA, so a clash means a bug or a replayed request;
    the enrollment fails as a server error (MS-MDE2 s:EnrollmentServer) and can be retried.
    """


def _enrollment(row: Mapping[str, Any]) -> Enrollment:
    return Enrollment(
        id=row["id"],
        host_id=row["host_id"],
        device_id=row["device_id"],
        hw_dev_id=row["hw_dev_id"],
        enrollment_type=row["enrollment_type"],
        not_in_oobe=row["not_in_oobe"],
        ux_initiated=row["ux_initiated"],
        device_name=row["device_name"],
        os_version=row["os_version"],
        os_edition=row["os_edition"],
        domain_name=row["domain_name"],
        upn=row["upn"],
        token_kind=row["token_kind"],
        context=tuple((str(name), str(value)) for name, value in row["context"]),
        dm_username=row["dm_username"],
        dm_password_digest=row["dm_password_digest"],
        dm_server_secret=row["dm_server_secret"],
        dm_nonce=row["dm_nonce"],
        active=bool(row["active"]),
        created_at=row["created_at"],
    )


def _certificate(row: Mapping[str, Any]) -> DeviceCertificate:
    return DeviceCertificate(
        serial=row["serial"],
        host_id=row["host_id"],
        enrollment_id=row["enrollment_id"],
        thumbprint=row["thumbprint"],
        subject=row["subject"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        der=bytes(row["der"]),
        status=row["status"],
        replaces_serial=row["replaces_serial"],
        first_used_at=row["first_used_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


class SQLHostStore:
    """HostStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, new: NewHost) -> Host:
        row = self._conn.execute(
            hosts.insert()
            .values(
                uuid=new.uuid,
                display_name=new.display_name,
                hw_dev_id=identifier(new.hw_dev_id),
                device_id=identifier(new.device_id),
                serial=identifier(new.serial),
                team_id=new.team_id,
                mdm_status=new.mdm_status,
                os_version=new.os_version,
                os_edition=new.os_edition,
                idp_username=new.idp_username,
                created_at=new.created_at,
                updated_at=new.created_at,
                last_seen_at=None,
            )
            .returning(*hosts.c)
        ).one()
        return host_from_row(row._mapping)

    def get(self, host_id: int) -> Host | None:
        row = self._conn.execute(hosts.select().where(hosts.c.id == host_id)).one_or_none()
        return None if row is None else host_from_row(row._mapping)

    def find_known(self, *, hw_dev_id: str | None, device_id: str | None) -> Host | None:
        # The hardware id survives an MDM reset, the MDM device id does not: ask it first.
        for column, value in ((hosts.c.hw_dev_id, hw_dev_id), (hosts.c.device_id, device_id)):
            if not value:
                continue
            row = self._conn.execute(
                hosts.select().where(column == value).order_by(hosts.c.id).limit(1)
            ).one_or_none()
            if row is not None:
                return host_from_row(row._mapping)
        return None

    def record_enrollment(
        self,
        host_id: int,
        *,
        display_name: str,
        hw_dev_id: str | None,
        device_id: str | None,
        os_version: str | None,
        os_edition: str | None,
        idp_username: str | None,
        mdm_status: MDMStatus,
        at: datetime,
    ) -> Host:
        # team_id is deliberately absent: re-enrollment never moves a host (design.md §1).
        values: dict[str, Any] = {
            "display_name": display_name,
            "mdm_status": mdm_status,
            "updated_at": at,
        }
        optional = {
            "hw_dev_id": identifier(hw_dev_id),
            "device_id": identifier(device_id),
            "os_version": os_version,
            "os_edition": os_edition,
            "idp_username": idp_username,
        }
        values.update({name: value for name, value in optional.items() if value is not None})
        row = self._conn.execute(
            hosts.update().where(hosts.c.id == host_id).values(**values).returning(*hosts.c)
        ).one_or_none()
        if row is None:
            raise NotFound(f"host {host_id} does not exist; it may have been deleted meanwhile")
        return host_from_row(row._mapping)


class SQLEnrollmentStore:
    """EnrollmentStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, new: NewEnrollment) -> Enrollment:
        row = self._conn.execute(
            enrollments.insert()
            .values(
                host_id=new.host_id,
                device_id=new.device_id,
                hw_dev_id=new.hw_dev_id,
                enrollment_type=new.enrollment_type,
                not_in_oobe=new.not_in_oobe,
                ux_initiated=new.ux_initiated,
                device_name=new.device_name,
                os_version=new.os_version,
                os_edition=new.os_edition,
                domain_name=new.domain_name,
                upn=new.upn,
                token_kind=new.token_kind,
                context=[[name, value] for name, value in new.context],
                extra=dict(new.extra),
                dm_username=new.dm_username,
                dm_password_digest=new.dm_password_digest,
                dm_server_secret=new.dm_server_secret,
                dm_nonce=new.dm_nonce,
                active=True,
                created_at=new.created_at,
            )
            .returning(*enrollments.c)
        ).one()
        return _enrollment(row._mapping)

    def get(self, enrollment_id: int) -> Enrollment | None:
        row = self._conn.execute(enrollments.select().where(enrollments.c.id == enrollment_id)).one_or_none()
        return None if row is None else _enrollment(row._mapping)

    def active_for_host(self, host_id: int) -> Enrollment | None:
        # Services deactivate before adding, so there is at most one; the newest wins if not.
        row = self._conn.execute(
            enrollments.select()
            .where(enrollments.c.host_id == host_id, enrollments.c.active.is_(True))
            .order_by(enrollments.c.id.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else _enrollment(row._mapping)

    def deactivate_for_host(self, host_id: int) -> int:
        result = self._conn.execute(
            enrollments.update()
            .where(enrollments.c.host_id == host_id, enrollments.c.active.is_(True))
            .values(active=False)
        )
        return result.rowcount

    def list_for_host(self, host_id: int) -> list[Enrollment]:
        rows = self._conn.execute(
            enrollments.select()
            .where(enrollments.c.host_id == host_id)
            .order_by(enrollments.c.created_at, enrollments.c.id)
        )
        return [_enrollment(row._mapping) for row in rows]

    def set_nonce(self, enrollment_id: int, nonce: str) -> None:
        result = self._conn.execute(
            enrollments.update().where(enrollments.c.id == enrollment_id).values(dm_nonce=nonce)
        )
        if result.rowcount == 0:
            raise NotFound(f"enrollment {enrollment_id} does not exist; the device must enroll again")

    def find_active_by_device_id(self, device_id: str) -> Enrollment | None:
        if not device_id:
            return None
        # The newest wins if a bug ever left two active enrollments with this DeviceID.
        row = self._conn.execute(
            enrollments.select()
            .where(enrollments.c.device_id == device_id, enrollments.c.active.is_(True))
            .order_by(enrollments.c.id.desc())
            .limit(1)
        ).one_or_none()
        return None if row is None else _enrollment(row._mapping)


class SQLCertificateStore:
    """CertificateStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, cert: DeviceCertificate) -> DeviceCertificate:
        statement = (
            device_certificates.insert()
            .values(
                serial=cert.serial,
                host_id=cert.host_id,
                enrollment_id=cert.enrollment_id,
                thumbprint=cert.thumbprint,
                subject=cert.subject,
                not_before=cert.not_before,
                not_after=cert.not_after,
                der=cert.der,
                status=cert.status,
                replaces_serial=cert.replaces_serial,
                first_used_at=cert.first_used_at,
                revoked_at=cert.revoked_at,
                revoked_reason=cert.revoked_reason,
            )
            .returning(*device_certificates.c)
        )
        # A savepoint keeps the caller's transaction usable after a clash (PostgreSQL would
        # otherwise refuse every further statement in it).
        savepoint = self._conn.begin_nested()
        try:
            row = self._conn.execute(statement).one()
        except IntegrityError as exc:
            savepoint.rollback()
            if self.get(cert.serial) is not None:
                raise DuplicateSerial(
                    f"certificate serial {cert.serial} is already stored; retry the enrollment"
                ) from exc
            raise
        savepoint.commit()
        return _certificate(row._mapping)

    def get(self, serial: str) -> DeviceCertificate | None:
        row = self._conn.execute(
            device_certificates.select().where(device_certificates.c.serial == serial)
        ).one_or_none()
        return None if row is None else _certificate(row._mapping)

    def list_for_host(self, host_id: int) -> list[DeviceCertificate]:
        rows = self._conn.execute(
            device_certificates.select()
            .where(device_certificates.c.host_id == host_id)
            .order_by(device_certificates.c.not_before, device_certificates.c.id)
        )
        return [_certificate(row._mapping) for row in rows]

    def mark_first_use(self, serial: str, at: datetime) -> bool:
        # The IS NULL guard makes "first" hold across concurrent sessions too.
        result = self._conn.execute(
            device_certificates.update()
            .where(
                device_certificates.c.serial == serial,
                device_certificates.c.first_used_at.is_(None),
            )
            .values(first_used_at=at)
        )
        return result.rowcount == 1

    def revoke(self, serial: str, at: datetime, reason: str) -> bool:
        result = self._conn.execute(
            device_certificates.update()
            .where(
                device_certificates.c.serial == serial,
                device_certificates.c.status == CertificateStatus.ACTIVE,
            )
            .values(status=CertificateStatus.REVOKED, revoked_at=at, revoked_reason=reason)
        )
        return result.rowcount == 1

    def revoke_active_for_host(
        self, host_id: int, at: datetime, reason: str, *, keep: str | None = None
    ) -> int:
        conditions = [
            device_certificates.c.host_id == host_id,
            device_certificates.c.status == CertificateStatus.ACTIVE,
        ]
        if keep is not None:
            conditions.append(device_certificates.c.serial != keep)
        result = self._conn.execute(
            device_certificates.update()
            .where(*conditions)
            .values(status=CertificateStatus.REVOKED, revoked_at=at, revoked_reason=reason)
        )
        return result.rowcount


class SQLTransaction:
    """Every store, bound to one connection in one transaction (protocols.Transaction)."""

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        self.hosts = SQLHostStore(conn)
        self.enrollments = SQLEnrollmentStore(conn)
        self.certificates = SQLCertificateStore(conn)
        self.inventory = SQLInventoryStore(conn)
        self.sessions = SQLSessionStore(conn)
        self.commands = SQLCommandQueue(conn)
        self.profiles = SQLProfileStore(conn)
        self.agent = SQLAgentStore(conn)
        self.activities = SQLActivityStore(conn)


class SQLStorage:
    """Storage over a SQLAlchemy Engine; run `database.migrate(engine)` before using it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[SQLTransaction]:
        """Commit on normal exit, roll back on an exception (which is re-raised)."""
        with self.engine.begin() as conn:
            yield SQLTransaction(conn)

    def close(self) -> None:
        """Close pooled connections; the Storage cannot be used afterwards."""
        self.engine.dispose()
