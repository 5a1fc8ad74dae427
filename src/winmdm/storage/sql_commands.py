"""SQL CommandQueue and SessionStore: what an OMA-DM session reads and writes on every message.

`next_for_host` runs on every device check-in, so it is one query; `record_reply` is a
conditional UPDATE so a reply replayed by the device, or handled by two instances at once, is
applied exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.management import (
    Command,
    CommandKind,
    CommandReply,
    CommandState,
    HostCommand,
    MDMSession,
)
from winmdm.errors import NotFound
from winmdm.storage.schema import commands, host_commands, hosts, mdm_sessions
from winmdm.storage.sql_rows import dialect_insert, upsert


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


def _host_command(row: Mapping[str, Any]) -> HostCommand:
    command = _command({column.name: row[f"command__{column.name}"] for column in commands.c})
    return HostCommand(
        host_id=row["host_id"],
        command=command,
        state=row["state"],
        session_id=row["session_id"],
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
            commands.insert()
            .values(
                uuid=uuid,
                kind=kind,
                payload=payload,
                context=dict(context or {}),
                actor=actor,
                created_at=at,
            )
            .returning(*commands.c)
        ).one()
        return _command(row._mapping)

    def enqueue(self, command_id: int, host_ids: Sequence[int], at: datetime) -> int:
        if not host_ids:
            return 0
        # One INSERT ... SELECT over the hosts that exist; ON CONFLICT skips hosts that already
        # have the command, including ones queued by a concurrent transaction.
        rows = sa.select(
            hosts.c.id,
            sa.literal(command_id, sa.Integer),
            sa.literal(CommandState.PENDING, host_commands.c.state.type),
            sa.literal([], host_commands.c.cmd_ids.type),
            sa.literal([], host_commands.c.replies.type),
            sa.literal(0, sa.Integer),
            sa.literal(at, host_commands.c.queued_at.type),
        ).where(hosts.c.id.in_(sorted(set(host_ids))))
        statement = (
            dialect_insert(self._conn, host_commands)
            .from_select(
                ["host_id", "command_id", "state", "cmd_ids", "replies", "attempts", "queued_at"],
                rows,
            )
            .on_conflict_do_nothing(index_elements=["host_id", "command_id"])
            # Count the returned rows: psycopg reports rowcount -1 for this INSERT ... SELECT.
            .returning(host_commands.c.host_id)
        )
        return len(self._conn.execute(statement).all())

    def next_for_host(self, host_id: int, session_id: str) -> list[HostCommand]:
        c = host_commands.c
        # SENT in another session: that session broke before the device answered, send again.
        sent_elsewhere = sa.and_(
            c.state == CommandState.SENT,
            sa.or_(c.session_id.is_(None), c.session_id != session_id),
        )
        rows = self._conn.execute(
            _SELECT.where(
                c.host_id == host_id, sa.or_(c.state == CommandState.PENDING, sent_elsewhere)
            ).order_by(c.command_id)
        )
        return [_host_command(row._mapping) for row in rows]

    def mark_sent(
        self,
        host_id: int,
        command_id: int,
        *,
        session_id: str,
        msg_id: int,
        cmd_ids: Sequence[int],
        at: datetime,
    ) -> None:
        c = host_commands.c
        result = self._conn.execute(
            host_commands.update()
            .where(c.host_id == host_id, c.command_id == command_id)
            .values(
                state=CommandState.SENT,
                session_id=session_id,
                msg_id=msg_id,
                cmd_ids=list(cmd_ids),
                sent_at=at,
                attempts=c.attempts + 1,
            )
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
        c = host_commands.c
        # WHERE state = 'sent': the rowcount says whether this call was the one that applied it.
        result = self._conn.execute(
            host_commands.update()
            .where(c.host_id == host_id, c.command_id == command_id, c.state == CommandState.SENT)
            .values(
                state=CommandState.DONE,
                status_code=status_code,
                replies=[_reply_to_json(reply) for reply in replies],
                raw_reply=raw_reply,
                done_at=at,
            )
        )
        return result.rowcount == 1

    def get(self, host_id: int, command_uuid: str) -> HostCommand | None:
        row = self._conn.execute(
            _SELECT.where(host_commands.c.host_id == host_id, commands.c.uuid == command_uuid)
        ).one_or_none()
        return None if row is None else _host_command(row._mapping)

    def list_for_host(self, host_id: int, *, limit: int = 100) -> list[HostCommand]:
        rows = self._conn.execute(
            _SELECT.where(host_commands.c.host_id == host_id)
            .order_by(host_commands.c.command_id.desc())
            .limit(limit)
        )
        return [_host_command(row._mapping) for row in rows]


def _session(row: Mapping[str, Any]) -> MDMSession:
    last_response = row["last_response"]
    return MDMSession(
        host_id=row["host_id"],
        session_id=row["session_id"],
        client_msg_id=row["client_msg_id"],
        server_msg_id=row["server_msg_id"],
        last_response=None if last_response is None else bytes(last_response),
        authenticated=bool(row["authenticated"]),
        sent=dict(row["sent"]),
        pending_chunks=tuple(row["pending_chunks"]),
        incoming=None if row["incoming"] is None else dict(row["incoming"]),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
    )


class SQLSessionStore:
    """SessionStore on one connection: one row per host, the latest session."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, host_id: int) -> MDMSession | None:
        row = self._conn.execute(mdm_sessions.select().where(mdm_sessions.c.host_id == host_id)).one_or_none()
        return None if row is None else _session(row._mapping)

    def save(self, session: MDMSession) -> None:
        values = {
            "host_id": session.host_id,
            "session_id": session.session_id,
            "client_msg_id": session.client_msg_id,
            "server_msg_id": session.server_msg_id,
            "last_response": session.last_response,
            "authenticated": session.authenticated,
            "sent": dict(session.sent),
            "pending_chunks": list(session.pending_chunks),
            "incoming": None if session.incoming is None else dict(session.incoming),
            "started_at": session.started_at,
            "updated_at": session.updated_at,
        }
        upsert(self._conn, mdm_sessions, values, keys=("host_id",))
