"""Revision 0006_sessions_per_enrollment on a database with a session in progress, and undone,
on SQLite and PostgreSQL: the session starts over, what it had sent is sent again."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tests.storage.test_migration_0003 import MDM_SESSIONS_0002
from winmdm.domain.management import CommandState, MDMSession
from winmdm.protocol.syncml.session import SessionState
from winmdm.storage import SQLStorage, current_revision
from winmdm.storage.database import downgrade, migrate
from winmdm.storage.schema import commands, enrollments, hosts

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# host_commands as revisions 0002 to 0005 had it.
HOST_COMMANDS_0005 = sa.table(
    "host_commands",
    *(sa.column(name) for name in ("host_id", "command_id", "state", "session_id", "msg_id", "attempts")),
    *(sa.column(name, sa.JSON) for name in ("cmd_ids", "replies")),
    sa.column("queued_at", sa.DateTime(timezone=True)),
    sa.column("sent_at", sa.DateTime(timezone=True)),
)


def _fill_at_0005(engine: sa.Engine) -> dict[str, int]:
    with engine.begin() as conn:
        host_id = conn.execute(
            hosts.insert()
            .values(uuid="u-1", display_name="DESKTOP-1", mdm_status="on", created_at=T0, updated_at=T0)
            .returning(hosts.c.id)
        ).scalar_one()
        enrollment_id = conn.execute(
            sa.table(
                "enrollments",
                *(sa.column(c.name, c.type) for c in enrollments.c if c.name != "dm_previous_nonce"),
            )
            .insert()
            .values(
                host_id=host_id,
                device_id="DEV-1",
                enrollment_type="Full",
                token_kind="entra_jwt",
                context=[],
                extra={},
                dm_username="DEV-1",
                dm_password_digest="ZGlnZXN0",
                dm_server_secret="c2VydmVy",
                dm_nonce="bm9uY2U=",
                active=True,
                created_at=T0,
            )
            .returning(sa.column("id"))
        ).scalar_one()
        command_id = conn.execute(
            commands.insert()
            .values(uuid="c-1", kind="reboot", payload="<Exec/>", context={}, created_at=T0)
            .returning(commands.c.id)
        ).scalar_one()
        conn.execute(
            HOST_COMMANDS_0005.insert().values(
                host_id=host_id,
                command_id=command_id,
                state="sent",
                session_id="1A",
                msg_id=2,
                cmd_ids=[3],
                replies=[],
                attempts=1,
                queued_at=T0,
                sent_at=T0,
            )
        )
        conn.execute(
            MDM_SESSIONS_0002.insert().values(
                host_id=host_id,
                session_id="1A",
                client_msg_id=2,
                server_msg_id=2,
                last_response=b"<SyncML/>",
                authenticated=True,
                sent={"2:3": "c-1"},
                pending_chunks=[],
                incoming=None,
                started_at=T0,
                updated_at=T0,
            )
        )
    return {"host": host_id, "enrollment": enrollment_id}


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns(table)}


def test_sessions_start_over_per_enrollment_and_sent_commands_go_again(engine: sa.Engine) -> None:
    migrate(engine, "0005_entra_device")
    ids = _fill_at_0005(engine)

    migrate(engine, "0006_sessions_per_enrollment")
    assert current_revision(engine) == "0006_sessions_per_enrollment"
    assert "session_key" in _columns(engine, "host_commands") and "session_id" not in _columns(
        engine, "host_commands"
    )
    assert {"enrollment_id", "session_key", "state", "proof"} <= _columns(engine, "mdm_sessions")
    storage = SQLStorage(engine)
    with storage.transaction() as tx:
        assert tx.sessions.get(ids["enrollment"]) is None  # the session in progress starts over
        assert tx.enrollments.get(ids["enrollment"]).dm_previous_nonce is None
        queued = tx.commands.next_for_host(ids["host"], "a-new-session-key")
        assert [(q.command.uuid, q.state, q.session_key) for q in queued] == [
            ("c-1", CommandState.SENT, "1A")
        ]
        tx.sessions.save(MDMSession(enrollment_id=ids["enrollment"], key="k", state=SessionState("2B")))

    downgrade(engine, "0005_entra_device")
    assert current_revision(engine) == "0005_entra_device"
    assert "session_id" in _columns(engine, "host_commands")
    assert "dm_previous_nonce" not in _columns(engine, "enrollments")
    assert "host_id" in _columns(engine, "mdm_sessions")
    with engine.connect() as conn:
        assert conn.execute(sa.select(HOST_COMMANDS_0005.c.session_id)).scalar_one() == "1A"
        assert conn.execute(sa.select(sa.func.count()).select_from(MDM_SESSIONS_0002)).scalar_one() == 0

    migrate(engine, "0006_sessions_per_enrollment")
    assert current_revision(engine) == "0006_sessions_per_enrollment"
