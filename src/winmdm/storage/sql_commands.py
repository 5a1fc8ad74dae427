"""SQL CommandQueue and SessionStore: what an OMA-DM session reads and writes on every message.

`next_for_host` runs on every device check-in, so it is one query; `record_reply` is a
conditional UPDATE so a reply replayed by the device, or handled by two instances at once, is
applied exactly once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from winmdm.domain.management import (
    Command,
    CommandKind,
    CommandReply,
    CommandState,
    HostCommand,
    MDMSession,
)
from winmdm.errors import NotFound
from winmdm.protocol.syncml.session import dump_state, load_state
from winmdm.storage.schema import commands, enrollments, host_commands, hosts, mdm_sessions
from winmdm.storage.sql_driver import DriverStatement
from winmdm.storage.sql_rows import IdList, PerDialect, for_listed_hosts, insert_for_dialect, upsert


def _command(row: Mapping[str, Any]) -> Command:
    return Command(
        id=row["id"],
        uuid=row["uuid"],
        kind=row["kind"],
        payload=row["payload"],
        created_at=row["created_at"],
        actor=row["actor"],
        context=dict(row["context"]),
    )


def _reply_to_json(reply: CommandReply) -> dict[str, Any]:
    return {
        "cmd_ref": reply.cmd_ref,
        "cmd": reply.cmd,
        "code": reply.code,
        "items": [[loc_uri, data] for loc_uri, data in reply.items],
    }


def _reply_from_json(value: Mapping[str, Any]) -> CommandReply:
    return CommandReply(
        cmd_ref=value["cmd_ref"],
        cmd=value["cmd"],
        code=value["code"],
        items=tuple((loc_uri, data) for loc_uri, data in value["items"]),
    )


# host_commands and commands in one SELECT; command columns are labelled to keep names apart.
_COMMAND_COLUMNS = [column.label(f"command__{column.name}") for column in commands.c]
_JOINED = host_commands.join(commands, host_commands.c.command_id == commands.c.id)
_SELECT = sa.select(*host_commands.c, *_COMMAND_COLUMNS).select_from(_JOINED)

# Statements are built once and run with parameter dicts (see sql.py). Parameters of an UPDATE
# are never named after a column of its table (SQLAlchemy would add them to its SET clause).
_p = sa.bindparam
_hc = host_commands.c
_INSERT_COMMAND = commands.insert().returning(*commands.c)
# SENT in another session: that session broke before the device answered, send again.
_HOST_IDS = IdList("host_ids")


def _enqueue(dialect: str, *, checking: bool) -> sa.Executable:
    """One INSERT ... SELECT, the ids in one parameter (any number of hosts in one statement):
    trusting the ids (the foreign key checks them) or `checking` them against hosts (see
    sql_rows.for_listed_hosts). ON CONFLICT skips hosts that already have the command, including
    ones queued by a concurrent transaction."""
    host_id, where = _HOST_IDS.host_rows(dialect, hosts.c.id, checking=checking)
    rows = sa.select(
        host_id,
        sa.bindparam("command_id", type_=sa.Integer),
        sa.literal(CommandState.PENDING, host_commands.c.state.type),
        sa.literal([], host_commands.c.cmd_ids.type),
        sa.literal([], host_commands.c.replies.type),
        sa.literal(0, sa.Integer),
        sa.bindparam("queued_at", type_=host_commands.c.queued_at.type),
    ).where(where)
    insert = (
        insert_for_dialect(dialect, host_commands)
        .from_select(["host_id", "command_id", "state", "cmd_ids", "replies", "attempts", "queued_at"], rows)
        .on_conflict_do_nothing(index_elements=["host_id", "command_id"])
    )
    if dialect != "postgresql":
        return insert  # SQLite's rowcount counts the rows inserted
    # Psycopg reports rowcount -1 for INSERT ... SELECT: the database counts the returned rows
    # (a fan-out to 100,000 hosts would otherwise send 100,000 ids back).
    queued = insert.returning(host_commands.c.host_id).cte("queued")
    return sa.select(sa.func.count()).select_from(queued)


def _queued_count(result: CursorResult[Any]) -> int:
    return int(result.scalar_one()) if result.returns_rows else result.rowcount


_ENQUEUE = PerDialect(functools.partial(_enqueue, checking=False))
_ENQUEUE_CHECKING = PerDialect(functools.partial(_enqueue, checking=True))
_NEXT_FOR_HOST = _SELECT.where(
    _hc.host_id == _p("host_id"),
    sa.or_(
        _hc.state == CommandState.PENDING,
        sa.and_(
            _hc.state == CommandState.SENT,
            sa.or_(_hc.session_key.is_(None), _hc.session_key != _p("session_key", type_=sa.Text)),
        ),
    ),
).order_by(_hc.command_id)
_MARK_SENT = (
    host_commands.update()
    .where(_hc.host_id == _p("match_host_id"), _hc.command_id == _p("match_command_id"))
    .values(
        state=CommandState.SENT,
        session_key=_p("new_session_key", type_=sa.Text),
        msg_id=_p("new_msg_id", type_=sa.Integer),
        cmd_ids=_p("new_cmd_ids", type_=_hc.cmd_ids.type),
        sent_at=_p("new_sent_at", type_=_hc.sent_at.type),
        attempts=_hc.attempts + 1,
    )
)
# WHERE state = 'sent': the rowcount says whether this call was the one that applied it.
_RECORD_REPLY = (
    host_commands.update()
    .where(
        _hc.host_id == _p("match_host_id"),
        _hc.command_id == _p("match_command_id"),
        _hc.state == CommandState.SENT,
    )
    .values(
        state=CommandState.DONE,
        status_code=_p("new_status_code", type_=sa.Integer),
        replies=_p("new_replies", type_=_hc.replies.type),
        raw_reply=_p("new_raw_reply", type_=sa.Text),
        done_at=_p("new_done_at", type_=_hc.done_at.type),
    )
)
_GET = _SELECT.where(_hc.host_id == _p("host_id"), commands.c.uuid == _p("command_uuid"))
_BY_UUID = _SELECT.where(commands.c.uuid == _p("command_uuid")).order_by(_hc.host_id)
_LIST_FOR_HOST = (
    _SELECT.where(_hc.host_id == _p("host_id"))
    .order_by(_hc.command_id.desc())
    .limit(_p("limit", type_=sa.Integer))
)
_CANCEL_PENDING = host_commands.delete().where(
    _hc.host_id == _p("host_id"),
    _hc.state == CommandState.PENDING,
    _hc.command_id == sa.select(commands.c.id).where(commands.c.uuid == _p("command_uuid")).scalar_subquery(),
)
_GET_SESSION = mdm_sessions.select().where(mdm_sessions.c.enrollment_id == _p("enrollment_id"))
# What an answered message writes besides its session (SessionStore.save_answered); the nonce
# UPDATE does nothing without a new nonce. The current nonce becomes the previous one (SET sees
# the row as it was before the UPDATE).
RENEW_NONCE = (
    enrollments.update()
    .where(
        enrollments.c.id == _p("nonce_enrollment_id", type_=sa.Integer),
        _p("nonce", type_=sa.Text).is_not(None),
    )
    .values(dm_nonce=_p("nonce", type_=sa.Text), dm_previous_nonce=enrollments.c.dm_nonce)
)
CHECKED_IN = (
    hosts.update()
    .where(hosts.c.id == _p("seen_host_id", type_=sa.Integer))
    .values(last_seen_at=_p("seen_at", type_=hosts.c.last_seen_at.type))
)
_SESSION_COLUMNS = tuple(column.name for column in mdm_sessions.c)


def _build_answered(dialect: str) -> sa.Executable:
    """The session upsert; on PostgreSQL with the nonce and last-seen UPDATEs as CTEs, so an
    answered message is one statement and one round trip. Its parameters are prefixed: an
    UPDATE takes any parameter named after a column of its table into its SET clause."""
    insert = insert_for_dialect(dialect, mdm_sessions).values(
        {name: _p(f"session_{name}", type_=mdm_sessions.c[name].type) for name in _SESSION_COLUMNS}
    )
    statement = insert.on_conflict_do_update(
        index_elements=[mdm_sessions.c.enrollment_id],
        set_={name: insert.excluded[name] for name in _SESSION_COLUMNS if name != "enrollment_id"},
    )
    if dialect == "postgresql":
        return statement.add_cte(RENEW_NONCE.cte("renewed_nonce"), CHECKED_IN.cte("seen"))
    return statement


# On the driver's cursor (sql_driver.py): every answered management message runs them.
_ANSWERED = DriverStatement(_build_answered)
_RENEW_NONCE = DriverStatement(RENEW_NONCE)
_CHECKED_IN = DriverStatement(CHECKED_IN)


def _host_command(row: Mapping[str, Any]) -> HostCommand:
    command = _command({column.name: row[f"command__{column.name}"] for column in commands.c})
    return HostCommand(
        host_id=row["host_id"],
        command=command,
        state=row["state"],
        session_key=row["session_key"],
        msg_id=row["msg_id"],
        cmd_ids=tuple(row["cmd_ids"]),
        status_code=row["status_code"],
        replies=tuple(_reply_from_json(value) for value in row["replies"]),
        raw_reply=row["raw_reply"],
        attempts=row["attempts"],
        queued_at=row["queued_at"],
        sent_at=row["sent_at"],
        done_at=row["done_at"],
    )


class SQLCommandQueue:
    """CommandQueue on one connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queued_here: set[int] = set()

    def create(
        self,
        kind: CommandKind,
        payload: str,
        *,
        at: datetime,
        uuid: str,
        actor: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Command:
        row = self._conn.execute(
            _INSERT_COMMAND,
            {
                "uuid": uuid,
                "kind": kind,
                "payload": payload,
                "context": dict(context or {}),
                "actor": actor,
                "created_at": at,
            },
        ).one()
        return _command(row._mapping)

    def enqueue(self, command_id: int, host_ids: Sequence[int], at: datetime) -> int:
        if not host_ids:
            return 0
        self._queued_here.update(host_ids)
        ids = _HOST_IDS.value(self._conn, host_ids)
        values = {"command_id": command_id, "queued_at": at, "host_ids": ids}
        trusting, checking = _ENQUEUE(self._conn), _ENQUEUE_CHECKING(self._conn)
        return for_listed_hosts(self._conn, len(host_ids), trusting, checking, values, _queued_count)

    def queued_here(self, host_id: int) -> bool:
        return host_id in self._queued_here

    def next_for_host(self, host_id: int, session_key: str) -> list[HostCommand]:
        rows = self._conn.execute(_NEXT_FOR_HOST, {"host_id": host_id, "session_key": session_key})
        return [_host_command(row._mapping) for row in rows]

    def mark_sent(
        self,
        host_id: int,
        command_id: int,
        *,
        session_key: str,
        msg_id: int,
        cmd_ids: Sequence[int],
        at: datetime,
    ) -> None:
        result = self._conn.execute(
            _MARK_SENT,
            {
                "match_host_id": host_id,
                "match_command_id": command_id,
                "new_session_key": session_key,
                "new_msg_id": msg_id,
                "new_cmd_ids": list(cmd_ids),
                "new_sent_at": at,
            },
        )
        if result.rowcount == 0:
            raise NotFound(f"command {command_id} is not queued for host {host_id}")

    def record_reply(
        self,
        host_id: int,
        command_id: int,
        *,
        status_code: int | None,
        replies: Sequence[CommandReply],
        raw_reply: str,
        at: datetime,
    ) -> bool:
        result = self._conn.execute(
            _RECORD_REPLY,
            {
                "match_host_id": host_id,
                "match_command_id": command_id,
                "new_status_code": status_code,
                "new_replies": [_reply_to_json(reply) for reply in replies],
                "new_raw_reply": raw_reply,
                "new_done_at": at,
            },
        )
        return result.rowcount == 1

    def cancel_pending(self, host_id: int, command_uuid: str) -> bool:
        result = self._conn.execute(_CANCEL_PENDING, {"host_id": host_id, "command_uuid": command_uuid})
        return result.rowcount == 1

    def get(self, host_id: int, command_uuid: str) -> HostCommand | None:
        row = self._conn.execute(_GET, {"host_id": host_id, "command_uuid": command_uuid}).one_or_none()
        return None if row is None else _host_command(row._mapping)

    def deliveries(self, command_uuid: str) -> list[HostCommand]:
        rows = self._conn.execute(_BY_UUID, {"command_uuid": command_uuid})
        return [_host_command(row._mapping) for row in rows]

    def list_for_host(self, host_id: int, *, limit: int = 100) -> list[HostCommand]:
        rows = self._conn.execute(_LIST_FOR_HOST, {"host_id": host_id, "limit": limit})
        return [_host_command(row._mapping) for row in rows]


def session_from_row(row: Mapping[str, Any]) -> MDMSession:
    digest, response = row["request_digest"], row["response"]
    return MDMSession(
        enrollment_id=row["enrollment_id"],
        key=row["session_key"],
        state=load_state(row["state"]),
        proof=row["proof"],
        certificate_serial=row["certificate_serial"],
        request_digest=None if digest is None else bytes(digest),
        response=None if response is None else bytes(response),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
    )


class SQLSessionStore:
    """SessionStore on one connection: one row per enrollment, its latest session."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, enrollment_id: int) -> MDMSession | None:
        row = self._conn.execute(_GET_SESSION, {"enrollment_id": enrollment_id}).one_or_none()
        return None if row is None else session_from_row(row._mapping)

    def save(self, session: MDMSession) -> None:
        values = {
            "enrollment_id": session.enrollment_id,
            "session_key": session.key,
            "state": dump_state(session.state),
            "proof": session.proof,
            "certificate_serial": session.certificate_serial,
            "request_digest": session.request_digest,
            "response": session.response,
            "started_at": session.started_at,
            "updated_at": session.updated_at,
        }
        upsert(self._conn, mdm_sessions, values, keys=("enrollment_id",))

    def save_answered(
        self, session: MDMSession, *, host_id: int, seen_at: datetime, nonce: str | None
    ) -> None:
        params = {
            "nonce_enrollment_id": session.enrollment_id,
            "nonce": nonce,
            "seen_host_id": host_id,
            "seen_at": seen_at,
            "session_enrollment_id": session.enrollment_id,
            "session_session_key": session.key,
            "session_state": dump_state(session.state),
            "session_proof": session.proof,
            "session_certificate_serial": session.certificate_serial,
            "session_request_digest": session.request_digest,
            "session_response": session.response,
            "session_started_at": session.started_at,
            "session_updated_at": session.updated_at,
        }
        if self._conn.dialect.name != "postgresql":  # SQLite: no UPDATE in a WITH clause
            if nonce is not None:
                _RENEW_NONCE.execute(self._conn, params)
            _CHECKED_IN.execute(self._conn, params)
        _ANSWERED.execute(self._conn, params)
