"""SQL InventoryStore, ProfileStore, AgentStore and ActivityStore (management_protocols.py)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from winmdm.domain.management import (
    Activity,
    AgentPackage,
    AgentStatus,
    HostAgent,
    HostProfile,
    Inventory,
    Profile,
    ProfileStatus,
)
from winmdm.domain.models import Host, MDMStatus
from winmdm.errors import Conflict
from winmdm.storage.schema import (
    activities,
    agent_package,
    host_agent,
    host_profiles,
    hosts,
    profiles,
    teams,
)
from winmdm.storage.sql_commands import CHECKED_IN
from winmdm.storage.sql_rows import (
    IdList,
    PerDialect,
    for_listed_hosts,
    host_from_row,
    host_missing,
    identifier,
    insert_for_dialect,
    keep_if_null,
    team_missing,
    upsert,
)

# agent_package holds one row, with this id (a CHECK constraint says so).
_AGENT_PACKAGE_ID = 1

# Statements are built once and run with parameter dicts (see sql.py). Parameters of an UPDATE
# are never named after a column of its table (SQLAlchemy would add them to its SET clause).
_p = sa.bindparam
_h = hosts.c
_INVENTORY_COLUMNS = (
    "serial",
    "display_name",
    "os_version",
    "manufacturer",
    "model",
    "language",
    "dm_version",
)
_RECORD_INVENTORY = (
    hosts.update()
    .where(_h.id == _p("match_id"))
    .values(
        {name: keep_if_null(_h[name]) for name in _INVENTORY_COLUMNS}
        | {"updated_at": _p("new_updated_at", type_=_h.updated_at.type)}
    )
    .returning(*hosts.c)
)
_GET_INVENTORY = sa.select(*(_h[name] for name in _INVENTORY_COLUMNS)).where(_h.id == _p("host_id"))
_SET_MDM_STATUS = (
    hosts.update()
    .where(_h.id == _p("match_id"))
    .values(
        mdm_status=_p("new_mdm_status", type_=_h.mdm_status.type),
        updated_at=_p("new_updated_at", type_=_h.updated_at.type),
    )
)
_INSERT_ACTIVITY = activities.insert().returning(*activities.c)


# Read on every check-in by the agent package's session hook: built once.
_PROFILE_HOSTS = IdList("host_ids")


def _set_host_statuses(dialect: str, *, checking: bool) -> sa.Executable:
    """One upsert of the profile's status for every listed host (ids in one parameter), trusting
    the ids or `checking` them against hosts (see sql_rows.for_listed_hosts)."""
    host_id, where = _PROFILE_HOSTS.host_rows(dialect, hosts.c.id, checking=checking)
    rows = sa.select(
        host_id,
        _p("profile_id", type_=sa.Integer),
        _p("status", type_=host_profiles.c.status.type),
        _p("detail", type_=sa.Text),
        _p("command_uuid", type_=host_profiles.c.command_uuid.type),
        _p("updated_at", type_=host_profiles.c.updated_at.type),
    ).where(where)
    statement = insert_for_dialect(dialect, host_profiles).from_select(
        ["host_id", "profile_id", "status", "detail", "command_uuid", "updated_at"], rows
    )
    changed = ("status", "detail", "command_uuid", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=[host_profiles.c.host_id, host_profiles.c.profile_id],
        set_={name: statement.excluded[name] for name in changed},
    )


_SET_HOST_STATUSES = PerDialect(functools.partial(_set_host_statuses, checking=False))
_SET_HOST_STATUSES_CHECKING = PerDialect(functools.partial(_set_host_statuses, checking=True))
_HOST_AGENT = host_agent.select().where(host_agent.c.host_id == sa.bindparam("host_id"))


class SQLInventoryStore:
    """InventoryStore on one connection: the inventory lives in hosts' columns."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record_inventory(self, host_id: int, inventory: Inventory, at: datetime) -> Host:
        # None keeps the stored value (COALESCE); an empty serial identifies nothing (as at
        # enrollment), so the stored one stays too.
        reported = {
            "new_serial": identifier(inventory.serial),
            "new_display_name": inventory.device_name,
            "new_os_version": inventory.os_version,
            "new_manufacturer": inventory.manufacturer,
            "new_model": inventory.model,
            "new_language": inventory.language,
            "new_dm_version": inventory.dm_version,
        }
        row = self._conn.execute(
            _RECORD_INVENTORY, {"match_id": host_id, "new_updated_at": at, **reported}
        ).one_or_none()
        if row is None:
            raise host_missing(host_id)
        return host_from_row(row._mapping)

    def get_inventory(self, host_id: int) -> Inventory:
        row = self._conn.execute(_GET_INVENTORY, {"host_id": host_id}).one_or_none()
        if row is None:
            raise host_missing(host_id)
        return Inventory(
            manufacturer=row.manufacturer,
            model=row.model,
            os_version=row.os_version,
            serial=row.serial,
            device_name=row.display_name,
            language=row.language,
            dm_version=row.dm_version,
        )

    def set_mdm_status(self, host_id: int, status: MDMStatus, at: datetime) -> None:
        self._update_host(
            _SET_MDM_STATUS, {"match_id": host_id, "new_mdm_status": status, "new_updated_at": at}
        )

    def checked_in(self, host_id: int, at: datetime) -> None:
        if self._conn.execute(CHECKED_IN, {"seen_host_id": host_id, "seen_at": at}).rowcount == 0:
            raise host_missing(host_id)

    def _update_host(self, statement: sa.Update, params: dict[str, Any]) -> None:
        if self._conn.execute(statement, params).rowcount == 0:
            raise host_missing(params["match_id"])


def _profile(row: Mapping[str, Any]) -> Profile:
    return Profile(
        id=row["id"],
        team_id=row["team_id"],
        name=row["name"],
        syncml=row["syncml"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _host_profile(row: Mapping[str, Any]) -> HostProfile:
    return HostProfile(
        host_id=row["host_id"],
        profile_id=row["profile_id"],
        status=row["status"],
        detail=row["detail"],
        command_uuid=row["command_uuid"],
        updated_at=row["updated_at"],
    )


def _team_key(team_id: int | None) -> int:
    """profiles.team_key: No team is 0 so its names are unique too (see schema.profiles)."""
    return 0 if team_id is None else team_id


class SQLProfileStore:
    """ProfileStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, *, team_id: int | None, name: str, syncml: str, at: datetime) -> Profile:
        statement = (
            profiles.insert()
            .values(
                team_id=team_id,
                team_key=_team_key(team_id),
                name=name,
                syncml=syncml,
                created_at=at,
                updated_at=at,
            )
            .returning(*profiles.c)
        )
        # A savepoint keeps the caller's transaction usable after a clash (see CertificateStore).
        savepoint = self._conn.begin_nested()
        try:
            row = self._conn.execute(statement).one()
        except IntegrityError as exc:
            savepoint.rollback()
            self._explain_clash(team_id, name, exc)
            raise
        savepoint.commit()
        return _profile(row._mapping)

    def _explain_clash(self, team_id: int | None, name: str, exc: IntegrityError) -> None:
        team_name = None
        if team_id is not None:
            team_name = self._conn.execute(
                sa.select(teams.c.name).where(teams.c.id == team_id)
            ).scalar_one_or_none()
            if team_name is None:
                raise team_missing(team_id) from exc
        clash = self._conn.execute(
            sa.select(profiles.c.id).where(profiles.c.team_key == _team_key(team_id), profiles.c.name == name)
        ).first()
        if clash is not None:
            where = "No team" if team_id is None else f'team "{team_name}"'
            raise Conflict(
                f'a profile named "{name}" already exists in {where}; choose another name '
                f"or change the existing profile"
            ) from exc

    def get(self, profile_id: int) -> Profile | None:
        row = self._conn.execute(profiles.select().where(profiles.c.id == profile_id)).one_or_none()
        return None if row is None else _profile(row._mapping)

    def list(self, *, team_id: int | None = None, all_teams: bool = False) -> list[Profile]:
        query = profiles.select().order_by(profiles.c.team_key, profiles.c.name, profiles.c.id)
        if not all_teams:
            query = query.where(profiles.c.team_key == _team_key(team_id))
        return [_profile(row._mapping) for row in self._conn.execute(query)]

    def delete(self, profile_id: int) -> bool:
        result = self._conn.execute(profiles.delete().where(profiles.c.id == profile_id))
        return result.rowcount == 1

    def set_host_status(
        self,
        host_id: int,
        profile_id: int,
        status: ProfileStatus,
        *,
        detail: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None:
        values = {
            "host_id": host_id,
            "profile_id": profile_id,
            "status": status,
            "detail": detail,
            "command_uuid": command_uuid,
            "updated_at": at,
        }
        upsert(self._conn, host_profiles, values, keys=("host_id", "profile_id"))

    def set_host_statuses(
        self,
        host_ids: Sequence[int],
        profile_id: int,
        status: ProfileStatus,
        *,
        detail: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None:
        if not host_ids:
            return
        values = {
            "host_ids": _PROFILE_HOSTS.value(self._conn, host_ids),
            "profile_id": profile_id,
            "status": status,
            "detail": detail,
            "command_uuid": command_uuid,
            "updated_at": at,
        }
        trusting, checking = _SET_HOST_STATUSES(self._conn), _SET_HOST_STATUSES_CHECKING(self._conn)
        for_listed_hosts(self._conn, len(host_ids), trusting, checking, values, lambda result: None)

    def clear_host_status(self, host_id: int, profile_id: int) -> bool:
        result = self._conn.execute(
            host_profiles.delete().where(
                host_profiles.c.host_id == host_id, host_profiles.c.profile_id == profile_id
            )
        )
        return result.rowcount == 1

    def host_statuses(self, host_id: int) -> list[HostProfile]:
        rows = self._conn.execute(
            host_profiles.select()
            .where(host_profiles.c.host_id == host_id)
            .order_by(host_profiles.c.profile_id)
        )
        return [_host_profile(row._mapping) for row in rows]

    def hosts_with_profile(self, profile_id: int) -> list[HostProfile]:
        rows = self._conn.execute(
            host_profiles.select()
            .where(host_profiles.c.profile_id == profile_id)
            .order_by(host_profiles.c.host_id)
        )
        return [_host_profile(row._mapping) for row in rows]


class SQLAgentStore:
    """AgentStore on one connection. A host's status read along with a management message's
    device state (sql_device_state.py) is answered from that read within the transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._known: dict[int, HostAgent | None] = {}

    def prime(self, known: dict[int, HostAgent | None]) -> None:
        self._known.update(known)

    def set_package(self, package: AgentPackage) -> None:
        values = {
            "id": _AGENT_PACKAGE_ID,
            "product_code": package.product_code,
            "version": package.version,
            "sha256": package.sha256,
            "install_args": package.install_args,
            "url": package.url,
            "content": package.content,
            "updated_at": package.updated_at,
        }
        upsert(self._conn, agent_package, values, keys=("id",))

    def get_package(self) -> AgentPackage | None:
        row = self._conn.execute(
            agent_package.select().where(agent_package.c.id == _AGENT_PACKAGE_ID)
        ).one_or_none()
        if row is None:
            return None
        return AgentPackage(
            product_code=row.product_code,
            version=row.version,
            sha256=row.sha256,
            install_args=row.install_args,
            url=row.url,
            content=None if row.content is None else bytes(row.content),
            updated_at=row.updated_at,
        )

    def set_host_status(
        self,
        host_id: int,
        status: AgentStatus,
        *,
        last_error: str | None,
        command_uuid: str | None,
        at: datetime,
    ) -> None:
        values = {
            "host_id": host_id,
            "status": status,
            "last_error": last_error,
            "command_uuid": command_uuid,
            "updated_at": at,
        }
        upsert(self._conn, host_agent, values, keys=("host_id",))
        self._known.pop(host_id, None)

    def host_status(self, host_id: int) -> HostAgent | None:
        if host_id in self._known:
            return self._known[host_id]
        row = self._conn.execute(_HOST_AGENT, {"host_id": host_id}).one_or_none()
        if row is None:
            return None
        return HostAgent(
            host_id=row.host_id,
            status=row.status,
            last_error=row.last_error,
            command_uuid=row.command_uuid,
            updated_at=row.updated_at,
        )


def _activity(row: Mapping[str, Any]) -> Activity:
    return Activity(
        id=row["id"],
        type=row["type"],
        actor=row["actor"],
        host_id=row["host_id"],
        details=dict(row["details"]),
        created_at=row["created_at"],
    )


class SQLActivityStore:
    """ActivityStore on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        type: str,
        *,
        at: datetime,
        actor: str | None = None,
        host_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> Activity:
        row = self._conn.execute(
            _INSERT_ACTIVITY,
            {
                "type": type,
                "actor": actor,
                "host_id": host_id,
                "details": dict(details or {}),
                "created_at": at,
            },
        ).one()
        return _activity(row._mapping)

    def list(self, *, host_id: int | None = None, limit: int = 100, offset: int = 0) -> list[Activity]:
        # Newest first by insertion (id), which the (host_id, id) index serves.
        query = activities.select().order_by(activities.c.id.desc()).limit(limit).offset(offset)
        if host_id is not None:
            query = query.where(activities.c.host_id == host_id)
        return [_activity(row._mapping) for row in self._conn.execute(query)]

    def count(self, *, host_id: int | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(activities)
        if host_id is not None:
            query = query.where(activities.c.host_id == host_id)
        return self._conn.execute(query).scalar_one()
