"""The one SQL implementation of the store protocols (SQLAlchemy Core, SQLite and PostgreSQL).

Every store is bound to the connection of one transaction, so a service's writes (host,
enrollment, certificate) land together or not at all. Rows come back as the frozen domain
dataclasses; nothing outside the sql*.py modules sees a SQLAlchemy row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from winmdm.domain.fleet import HostFilter, HostSummary, StatusCount, TeamFilter
from winmdm.domain.identity import EnrollmentKind, is_real_serial
from winmdm.domain.management import DeviceState
from winmdm.domain.models import (
    CertificateStatus,
    DeviceCertificate,
    Enrollment,
    Host,
    MDMStatus,
    NewEnrollment,
    NewHost,
)
from winmdm.errors import Conflict, EnrollmentServerError, NotFound
from winmdm.storage.schema import device_certificates, enrollments, hosts, teams
from winmdm.storage.sql_admin import SQLAdminStore, SQLAdminTokenStore, SQLLoginFailureStore, SQLSettingStore
from winmdm.storage.sql_commands import RENEW_NONCE, SQLCommandQueue, SQLSessionStore
from winmdm.storage.sql_device_state import read_device_state
from winmdm.storage.sql_fleet import delete_host, search_hosts, status_counts
from winmdm.storage.sql_identity import (
    SQLEnrollmentSecretStore,
    SQLEnrollmentTokenStore,
    SQLTeamStore,
    merge_hosts,
)
from winmdm.storage.sql_management import (
    SQLActivityStore,
    SQLAgentStore,
    SQLInventoryStore,
    SQLProfileStore,
)
from winmdm.storage.sql_osquery import SQLAgentNodeStore, SQLLiveQueryStore
from winmdm.storage.sql_policies import SQLPolicyStore
from winmdm.storage.sql_rows import (
    PerDialect,
    certificate_from_row,
    enrollment_from_row,
    host_from_row,
    host_missing,
    identifier,
    insert_for_dialect,
    keep_if_null,
    team_missing,
)


class DuplicateSerial(EnrollmentServerError):
    """A certificate with this serial is already stored.

    Serials are random and issued by winmdm's CA, so a clash means a bug or a replayed request;
    the enrollment fails as a server error (MS-MDE2 s:EnrollmentServer) and can be retried.
    """


# Statements are built once, here, and run with parameter dicts: building a SQLAlchemy statement
# (and its cache key) per call cost more than SQLite took to run it. Parameters of an UPDATE are
# never named after a column of its table (SQLAlchemy would add them to its SET clause).
_p = sa.bindparam
_h = hosts.c
_INSERT_HOST = hosts.insert().returning(*hosts.c)
_GET_HOST = hosts.select().where(_h.id == _p("host_id"))
# The hardware id survives an MDM reset, the MDM device id does not: a hardware-id match wins,
# then the oldest host. A NULL parameter compares NULL, so it never matches.
_HW_DEV_ID = _p("hw_dev_id", type_=sa.Text)
_FIND_KNOWN = (
    hosts.select()
    .where(sa.or_(_h.hw_dev_id == _HW_DEV_ID, _h.device_id == _p("device_id", type_=sa.Text)))
    .order_by(sa.case((_h.hw_dev_id == _HW_DEV_ID, 0), else_=1), _h.id)
    .limit(1)
)


# team_id is deliberately absent: re-enrollment never moves a host (design.md §1).
_RECORD_ENROLLMENT = (
    hosts.update()
    .where(_h.id == _p("match_id"))
    .values(
        display_name=_p("new_display_name"),
        mdm_status=_p("new_mdm_status", type_=_h.mdm_status.type),
        updated_at=_p("new_updated_at", type_=_h.updated_at.type),
        hw_dev_id=keep_if_null(_h.hw_dev_id),
        device_id=keep_if_null(_h.device_id),
        os_version=keep_if_null(_h.os_version),
        os_edition=keep_if_null(_h.os_edition),
        idp_username=keep_if_null(_h.idp_username),
        enrollment_kind=keep_if_null(_h.enrollment_kind),
        entra_device_id=keep_if_null(_h.entra_device_id),
    )
    .returning(*hosts.c)
)
# An Entra device id names one host at a time: recording it on one forgets it on the others.
_FORGET_ENTRA_DEVICE_ID = (
    hosts.update()
    .where(_h.entra_device_id == _p("match_entra_device_id", type_=sa.Text), _h.id != _p("keep_id"))
    .values(entra_device_id=None)
)
# Newest record first, should a merge ever leave two.
_FIND_BY_ENTRA_DEVICE_ID = (
    hosts.select()
    .where(_h.entra_device_id == _p("entra_device_id", type_=sa.Text))
    .order_by(_h.id.desc())
    .limit(1)
)
_SET_TEAM = hosts.update().where(_h.id == _p("match_id"))
_SET_NO_TEAM = _SET_TEAM.values(team_id=None)
# The team is checked in the same statement: a foreign key failure would abort the transaction
# on PostgreSQL; zero rows updated says "host or team missing" without one.
_SET_SOME_TEAM = _SET_TEAM.where(sa.exists().where(teams.c.id == _p("new_team_id", type_=sa.Integer))).values(
    team_id=_p("new_team_id", type_=sa.Integer)
)
_HOST_EXISTS = sa.select(_h.id).where(_h.id == _p("host_id"))
# Several hosts may report one serial (a board swapped between PCs): the oldest wins.
_FIND_BY_SERIAL = hosts.select().where(_h.serial == _p("serial", type_=sa.Text)).order_by(_h.id).limit(1)


_e = enrollments.c
_INSERT_ENROLLMENT = enrollments.insert().returning(*enrollments.c)
_GET_ENROLLMENT = enrollments.select().where(_e.id == _p("enrollment_id"))
# Services deactivate before adding, so there is at most one active; the newest wins if not.
_ACTIVE_FOR_HOST = (
    enrollments.select()
    .where(_e.host_id == _p("host_id"), _e.active.is_(True))
    .order_by(_e.id.desc())
    .limit(1)
)
# A DeviceID is self-reported: several PCs may claim one (docs/host-identity.md). A bound keeps
# a flood of claims from making every message of the real device slow.
_MAX_CLAIMS = 8
_ACTIVE_BY_DEVICE_ID = (
    enrollments.select()
    .where(_e.device_id == _p("device_id"), _e.active.is_(True))
    .order_by(_e.id.desc())
    .limit(_MAX_CLAIMS)
)
_DEACTIVATE_FOR_HOST = (
    enrollments.update().where(_e.host_id == _p("match_host_id"), _e.active.is_(True)).values(active=False)
)
_ENROLLMENTS_FOR_HOST = enrollments.select().where(_e.host_id == _p("host_id")).order_by(_e.created_at, _e.id)

_c = device_certificates.c
# ON CONFLICT (serial) DO NOTHING: a clash returns no row instead of failing, so the happy path
# needs no savepoint and the caller's transaction stays usable after a clash (on PostgreSQL a
# failed statement would abort it).
_INSERT_CERTIFICATE = PerDialect(
    lambda dialect: (
        insert_for_dialect(dialect, device_certificates)
        .on_conflict_do_nothing(index_elements=[_c.serial])
        .returning(*device_certificates.c)
    )
)
_GET_CERTIFICATE = device_certificates.select().where(_c.serial == _p("serial"))
_CERTIFICATES_FOR_HOST = (
    device_certificates.select().where(_c.host_id == _p("host_id")).order_by(_c.not_before, _c.id)
)
# The IS NULL guard makes "first" hold across concurrent sessions too.
_MARK_FIRST_USE = (
    device_certificates.update()
    .where(_c.serial == _p("match_serial"), _c.first_used_at.is_(None))
    .values(first_used_at=_p("new_first_used_at", type_=_c.first_used_at.type))
)
_REVOKED = {
    "status": CertificateStatus.REVOKED,
    "revoked_at": _p("new_revoked_at", type_=_c.revoked_at.type),
    "revoked_reason": _p("new_revoked_reason"),
}
_REVOKE = (
    device_certificates.update()
    .where(_c.serial == _p("match_serial"), _c.status == CertificateStatus.ACTIVE)
    .values(**_REVOKED)
)
_REVOKE_FOR_HOST = device_certificates.update().where(
    _c.host_id == _p("match_host_id"), _c.status == CertificateStatus.ACTIVE
)
_REVOKE_ALL_FOR_HOST = _REVOKE_FOR_HOST.values(**_REVOKED)
_REVOKE_OTHERS_FOR_HOST = _REVOKE_FOR_HOST.where(_c.serial != _p("keep_serial")).values(**_REVOKED)


class SQLHostStore:
    """HostStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, new: NewHost) -> Host:
        row = self._conn.execute(
            _INSERT_HOST,
            {
                "uuid": new.uuid,
                "display_name": new.display_name,
                "hw_dev_id": identifier(new.hw_dev_id),
                "device_id": identifier(new.device_id),
                "serial": identifier(new.serial),
                "team_id": new.team_id,
                "mdm_status": new.mdm_status,
                "os_version": new.os_version,
                "os_edition": new.os_edition,
                "idp_username": new.idp_username,
                "created_at": new.created_at,
                "updated_at": new.created_at,
                "last_seen_at": None,
                "enrollment_kind": new.enrollment_kind,
                "entra_device_id": identifier(new.entra_device_id),
            },
        ).one()
        host = host_from_row(row._mapping)
        self._own_entra_device_id(host)
        return host

    def get(self, host_id: int) -> Host | None:
        row = self._conn.execute(_GET_HOST, {"host_id": host_id}).one_or_none()
        return None if row is None else host_from_row(row._mapping)

    def list_ids(self, *, team_id: int | None, mdm_statuses: Sequence[MDMStatus]) -> list[int]:
        if not mdm_statuses:
            return []
        team = hosts.c.team_id.is_(None) if team_id is None else hosts.c.team_id == team_id
        query = (
            sa.select(hosts.c.id)
            .where(team, hosts.c.mdm_status.in_([MDMStatus(s) for s in mdm_statuses]))
            .order_by(hosts.c.id)
        )
        return list(self._conn.execute(query).scalars())

    def find_known(self, *, hw_dev_id: str | None, device_id: str | None) -> Host | None:
        hw_dev_id, device_id = identifier(hw_dev_id), identifier(device_id)
        if hw_dev_id is None and device_id is None:
            return None
        row = self._conn.execute(_FIND_KNOWN, {"hw_dev_id": hw_dev_id, "device_id": device_id}).one_or_none()
        return None if row is None else host_from_row(row._mapping)

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
        enrollment_kind: EnrollmentKind | None = None,
        entra_device_id: str | None = None,
    ) -> Host:
        row = self._conn.execute(
            _RECORD_ENROLLMENT,
            {
                "match_id": host_id,
                "new_display_name": display_name,
                "new_mdm_status": mdm_status,
                "new_updated_at": at,
                # None (and an empty identifier) keeps the stored value.
                "new_hw_dev_id": identifier(hw_dev_id),
                "new_device_id": identifier(device_id),
                "new_os_version": os_version,
                "new_os_edition": os_edition,
                "new_idp_username": idp_username,
                "new_enrollment_kind": enrollment_kind,
                "new_entra_device_id": identifier(entra_device_id),
            },
        ).one_or_none()
        if row is None:
            raise host_missing(host_id)
        host = host_from_row(row._mapping)
        if entra_device_id:
            self._own_entra_device_id(host)
        return host

    def _own_entra_device_id(self, host: Host) -> None:
        if host.entra_device_id is not None:
            self._conn.execute(
                _FORGET_ENTRA_DEVICE_ID, {"match_entra_device_id": host.entra_device_id, "keep_id": host.id}
            )

    def set_team(self, host_id: int, team_id: int | None) -> None:
        if team_id is None:
            result = self._conn.execute(_SET_NO_TEAM, {"match_id": host_id})
        else:
            result = self._conn.execute(_SET_SOME_TEAM, {"match_id": host_id, "new_team_id": team_id})
        if result.rowcount == 1:
            return
        if self._conn.execute(_HOST_EXISTS, {"host_id": host_id}).first() is None:
            raise host_missing(host_id)
        raise team_missing(team_id)

    def find_by_serial(self, serial: str | None) -> Host | None:
        if not is_real_serial(serial):
            return None
        row = self._conn.execute(_FIND_BY_SERIAL, {"serial": serial}).one_or_none()
        return None if row is None else host_from_row(row._mapping)

    def find_by_entra_device_id(self, entra_device_id: str | None) -> Host | None:
        if not entra_device_id:
            return None
        row = self._conn.execute(_FIND_BY_ENTRA_DEVICE_ID, {"entra_device_id": entra_device_id}).one_or_none()
        return None if row is None else host_from_row(row._mapping)

    def merge_into(self, source_id: int, target_id: int, at: datetime) -> None:
        if source_id == target_id:
            raise Conflict(f"host {source_id} cannot be merged into itself")
        if not merge_hosts(self._conn, source_id, target_id, at):
            missing = source_id if self.get(source_id) is None else target_id
            raise host_missing(missing)

    def search(self, filter: HostFilter) -> tuple[list[HostSummary], int]:
        return search_hosts(self._conn, filter)

    def status_counts(self, team: TeamFilter) -> list[StatusCount]:
        return status_counts(self._conn, team)

    def delete(self, host_id: int) -> bool:
        return delete_host(self._conn, host_id)


class SQLEnrollmentStore:
    """EnrollmentStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, new: NewEnrollment) -> Enrollment:
        row = self._conn.execute(
            _INSERT_ENROLLMENT,
            {
                "host_id": new.host_id,
                "device_id": new.device_id,
                "hw_dev_id": new.hw_dev_id,
                "enrollment_type": new.enrollment_type,
                "not_in_oobe": new.not_in_oobe,
                "ux_initiated": new.ux_initiated,
                "device_name": new.device_name,
                "os_version": new.os_version,
                "os_edition": new.os_edition,
                "domain_name": new.domain_name,
                "upn": new.upn,
                "token_kind": new.token_kind,
                "context": [[name, value] for name, value in new.context],
                "extra": dict(new.extra),
                "dm_username": new.dm_username,
                "dm_password_digest": new.dm_password_digest,
                "dm_server_secret": new.dm_server_secret,
                "dm_nonce": new.dm_nonce,
                "active": True,
                "created_at": new.created_at,
                "enrollment_kind": new.enrollment_kind,
                "end_user_username": new.end_user_username,
            },
        ).one()
        return enrollment_from_row(row._mapping)

    def get(self, enrollment_id: int) -> Enrollment | None:
        row = self._conn.execute(_GET_ENROLLMENT, {"enrollment_id": enrollment_id}).one_or_none()
        return None if row is None else enrollment_from_row(row._mapping)

    def active_for_host(self, host_id: int) -> Enrollment | None:
        row = self._conn.execute(_ACTIVE_FOR_HOST, {"host_id": host_id}).one_or_none()
        return None if row is None else enrollment_from_row(row._mapping)

    def deactivate_for_host(self, host_id: int) -> int:
        return self._conn.execute(_DEACTIVATE_FOR_HOST, {"match_host_id": host_id}).rowcount

    def list_for_host(self, host_id: int) -> list[Enrollment]:
        rows = self._conn.execute(_ENROLLMENTS_FOR_HOST, {"host_id": host_id})
        return [enrollment_from_row(row._mapping) for row in rows]

    def renew_nonce(self, enrollment_id: int, nonce: str) -> None:
        result = self._conn.execute(RENEW_NONCE, {"nonce_enrollment_id": enrollment_id, "nonce": nonce})
        if result.rowcount == 0:
            raise NotFound(f"enrollment {enrollment_id} does not exist; the device must enroll again")

    def find_active_by_device_id(self, device_id: str) -> Enrollment | None:
        active = self.active_by_device_id(device_id)
        return active[0] if active else None

    def active_by_device_id(self, device_id: str) -> list[Enrollment]:
        if not device_id:
            return []
        rows = self._conn.execute(_ACTIVE_BY_DEVICE_ID, {"device_id": device_id})
        return [enrollment_from_row(row._mapping) for row in rows]


class SQLCertificateStore:
    """CertificateStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, cert: DeviceCertificate) -> DeviceCertificate:
        row = self._conn.execute(
            _INSERT_CERTIFICATE(self._conn),
            {
                "serial": cert.serial,
                "host_id": cert.host_id,
                "enrollment_id": cert.enrollment_id,
                "thumbprint": cert.thumbprint,
                "subject": cert.subject,
                "not_before": cert.not_before,
                "not_after": cert.not_after,
                "der": cert.der,
                "status": cert.status,
                "replaces_serial": cert.replaces_serial,
                "first_used_at": cert.first_used_at,
                "revoked_at": cert.revoked_at,
                "revoked_reason": cert.revoked_reason,
            },
        ).one_or_none()
        if row is None:
            raise DuplicateSerial(f"certificate serial {cert.serial} is already stored; retry the enrollment")
        return certificate_from_row(row._mapping)

    def get(self, serial: str) -> DeviceCertificate | None:
        row = self._conn.execute(_GET_CERTIFICATE, {"serial": serial}).one_or_none()
        return None if row is None else certificate_from_row(row._mapping)

    def list_for_host(self, host_id: int) -> list[DeviceCertificate]:
        rows = self._conn.execute(_CERTIFICATES_FOR_HOST, {"host_id": host_id})
        return [certificate_from_row(row._mapping) for row in rows]

    def mark_first_use(self, serial: str, at: datetime) -> bool:
        result = self._conn.execute(_MARK_FIRST_USE, {"match_serial": serial, "new_first_used_at": at})
        return result.rowcount == 1

    def revoke(self, serial: str, at: datetime, reason: str) -> bool:
        result = self._conn.execute(
            _REVOKE, {"match_serial": serial, "new_revoked_at": at, "new_revoked_reason": reason}
        )
        return result.rowcount == 1

    def revoke_active_for_host(
        self, host_id: int, at: datetime, reason: str, *, keep: str | None = None
    ) -> int:
        params: dict[str, Any] = {
            "match_host_id": host_id,
            "new_revoked_at": at,
            "new_revoked_reason": reason,
        }
        if keep is None:
            return self._conn.execute(_REVOKE_ALL_FOR_HOST, params).rowcount
        params["keep_serial"] = keep
        return self._conn.execute(_REVOKE_OTHERS_FOR_HOST, params).rowcount


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
        self.teams = SQLTeamStore(conn)
        self.enrollment_tokens = SQLEnrollmentTokenStore(conn)
        self.enrollment_secrets = SQLEnrollmentSecretStore(conn)
        self.admins = SQLAdminStore(conn)
        self.admin_tokens = SQLAdminTokenStore(conn)
        self.login_failures = SQLLoginFailureStore(conn)
        self.settings = SQLSettingStore(conn)
        self.osquery_nodes = SQLAgentNodeStore(conn)
        self.live_queries = SQLLiveQueryStore(conn)
        self.policies = SQLPolicyStore(conn)

    def device_state(self, device_id: str, certificate_serial: str | None) -> DeviceState:
        state, agents = read_device_state(self.connection, device_id, certificate_serial)
        self.agent.prime(agents)
        return state


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
