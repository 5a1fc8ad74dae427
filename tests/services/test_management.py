"""Management sessions and admin commands through the whole app in-process, on SQLite and
PostgreSQL: enrollment by the device emulator, then OMA-DM sessions as Windows runs them."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import event

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.management import CommandKind, CommandState
from winmdm.errors import InvalidInput, NotFound
from winmdm.protocol import syncml
from winmdm.protocol.syncml import StatusCode
from winmdm.runtime import Runtime


@pytest.fixture
def managed(client, entra) -> ManagedDevice:
    device = WindowsDevice()
    device.enroll(
        client,
        SERVER + "/EnrollmentServer/Discovery.svc",
        email="alice@corp.example",
        token=entra.token(tenant_id=TENANT, audience=SERVER),
    )
    return ManagedDevice(device)


def _host_id(runtime: Runtime, managed: ManagedDevice) -> int:
    with runtime.storage.transaction() as tx:
        return tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id


def test_raw_syncml_is_delivered_and_its_results_kept(runtime, client, managed) -> None:
    managed.session(client)  # first session: inventory
    host_id = _host_id(runtime, managed)
    managed.nodes["./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart"] = "8"
    command = runtime.commands.run_syncml(
        [host_id],
        "<Get><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart"
        "</LocURI></Target></Item></Get>",
        actor="admin@corp.example",
    )
    assert runtime.commands.result(host_id, command.uuid).state is CommandState.PENDING
    log = managed.session(client)
    assert [type(c).__name__ for c in log.received] == ["Get"]
    result = runtime.commands.result(host_id, command.uuid)
    assert result.state is CommandState.DONE and result.status_code == 200
    results = [r for r in result.replies if r.cmd == "Results"]
    assert results[0].items == (("./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart", "8"),)
    assert "ActiveHoursStart" in result.raw_reply
    # Nothing more to do: the next session is idle and the command is not sent again.
    assert managed.session(client).received == []


def test_several_commands_run_in_order_and_failures_are_recorded(runtime, client, managed) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    managed.answers["./Device/Vendor/MSFT/Policy/Config/Nope/Setting"] = StatusCode.NOT_FOUND
    command = runtime.commands.run_syncml(
        [host_id],
        "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Nope/Setting</LocURI>"
        '</Target><Meta><Format xmlns="syncml:metinf">int</Format></Meta><Data>1</Data></Item></Replace>'
        "<Get><CmdID>2</CmdID><Item><Target><LocURI>./DevDetail/SwV</LocURI></Target></Item></Get>",
        actor=None,
    )
    managed.session(client)
    result = runtime.commands.result(host_id, command.uuid)
    assert result.state is CommandState.DONE
    codes = {r.cmd: r.code for r in result.replies if r.code is not None}
    assert codes["Replace"] == 404 and codes["Get"] == 200 and codes["Sequence"] == 200


@pytest.mark.parametrize(
    ("method", "uri", "data"),
    [
        ("reboot", "./Device/Vendor/MSFT/Reboot/RebootNow", None),
        ("wipe", "./Device/Vendor/MSFT/RemoteWipe/doWipe", None),
        ("wipe_protected", "./Device/Vendor/MSFT/RemoteWipe/doWipeProtected", None),
        ("unenroll", "./Vendor/MSFT/DMClient/Provider/winmdm/Unenroll", "winmdm"),
    ],
)
def test_admin_actions_send_the_right_exec(runtime, client, managed, method, uri, data) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    if method == "wipe_protected":
        runtime.commands.wipe(host_id, protected=True, actor="admin")
    elif method == "wipe":
        runtime.commands.wipe(host_id, protected=False, actor="admin")
    else:
        getattr(runtime.commands, method)(host_id, actor="admin")
    log = managed.session(client)
    assert len(log.received) == 1 and isinstance(log.received[0], syncml.Exec)
    assert log.received[0].items[0].target == uri
    assert log.received[0].items[0].data == data
    with runtime.storage.transaction() as tx:
        assert tx.activities.list(limit=1)[0].actor == "admin"


def test_a_command_is_delivered_again_when_the_session_broke(runtime, client, managed) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    command = runtime.commands.reboot(host_id, actor=None)
    # The device receives the Exec but its next message never arrives (the session breaks).
    header = syncml.SyncHdr(
        session_id="0B",
        msg_id=1,
        target=managed.device.enrolled.management_url,
        source=managed.device.device_id,
        source_name=managed.name,
        cred=managed._cred(),
    )
    reply = managed.post(client, syncml.Message(header=header, commands=(syncml.Alert(cmd_id=1, data=1201),)))
    assert any(isinstance(c, syncml.Exec) for c in reply.commands)
    assert runtime.commands.result(host_id, command.uuid).state is CommandState.SENT
    managed.nonce = base64.b64decode(reply.commands[0].chal.meta.next_nonce)
    log = managed.session(client)  # a new session: sent again, answered once
    assert [type(c).__name__ for c in log.received] == ["Exec"]
    result = runtime.commands.result(host_id, command.uuid)
    assert result.state is CommandState.DONE and result.attempts == 2


def test_replies_respect_the_clients_max_message_size(runtime, client, managed) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    value = "x" * 1500
    for n in range(12):
        runtime.commands.run_syncml(
            [host_id],
            f"<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Test/Node{n}</LocURI></Target>"
            f"<Data>{value}</Data></Item></Replace>",
            actor=None,
        )
    log = managed.session(client, max_msg_size=6000)
    assert len(log.received) == 12
    assert len(log.replies) >= 4
    for reply in log.replies:
        assert len(syncml.build_message(reply)) <= 6000
    assert all(managed.nodes[f"./Device/Vendor/MSFT/Test/Node{n}"] == value for n in range(12))


def test_an_idle_check_in_fetches_commands_with_one_query(runtime, client, managed) -> None:
    managed.session(client)
    engine = runtime.storage.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if "host_commands" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert managed.session(client).received == []
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_the_first_session_looks_for_its_inventory_once(runtime, client, managed, monkeypatch) -> None:
    """Not on every message while the host is pending: the first one queues it (hot path)."""
    from winmdm.storage.sql_commands import SQLCommandQueue

    calls: list[int] = []
    original = SQLCommandQueue.list_for_host

    def counted(self, host_id, **kwargs):
        calls.append(host_id)
        return original(self, host_id, **kwargs)

    monkeypatch.setattr(SQLCommandQueue, "list_for_host", counted)
    log = managed.session(client)
    assert len(log.replies) >= 2
    assert [type(c) for c in log.received] == [syncml.Get]
    assert len(calls) == 1
    calls.clear()
    managed.session(client)
    assert calls == []  # managed now: no look at all


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("<Get>\ud800</Get>", "not valid UTF-8"),
        ("<Replace>", "not valid"),
        ("<Alert><CmdID>1</CmdID><Data>1201</Data></Alert>", "Alert is not allowed"),
        (
            "<Get><CmdID>1</CmdID><Item><Target><LocURI>/Device/Vendor/MSFT/X</LocURI></Target></Item></Get>",
            "is not valid",
        ),
        (
            "<Get><CmdID>1</CmdID><Item><Target><LocURI>./Device//X</LocURI></Target></Item></Get>",
            "is not valid",
        ),
        ("<Get><CmdID>1</CmdID></Get>", "has no Item"),
        ("<Atomic><CmdID>1</CmdID><Sequence><CmdID>2</CmdID></Sequence></Atomic>", "Sequence is not allowed"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><Get/>', "not valid"),
    ],
)
def test_bad_admin_syncml_says_what_is_wrong(runtime, client, managed, text, problem) -> None:
    host_id = _host_id(runtime, managed)
    with pytest.raises(InvalidInput, match=problem) as error:
        runtime.commands.run_syncml([host_id], text, actor=None)
    assert error.value.field == "syncml"


def test_commands_for_unknown_hosts_are_refused(runtime) -> None:
    with pytest.raises(NotFound):
        runtime.commands.reboot(999_999, actor=None)
    with pytest.raises(NotFound):
        runtime.commands.result(999_999, "nope")


def test_kinds_are_recorded(runtime, client, managed) -> None:
    host_id = _host_id(runtime, managed)
    command = runtime.commands.wipe(host_id, protected=True, actor=None)
    assert command.kind is CommandKind.WIPE_PROTECTED


def test_a_large_command_is_sent_in_chunks(runtime, client, managed) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    value = "<policy>" + "é" * 9000 + "</policy>"  # escaped and multi-byte: sizes are in bytes
    command = runtime.commands.run_syncml(
        [host_id],
        "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Test/Big</LocURI></Target>"
        f'<Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>{value.replace("<", "&lt;")}</Data>'
        "</Item></Replace>",
        actor=None,
    )
    log = managed.session(client, max_msg_size=4000)
    assert managed.nodes["./Device/Vendor/MSFT/Test/Big"] == value
    assert managed.chunks_received >= 4
    for reply in log.replies:
        assert len(syncml.build_message(reply)) <= 4000
    first = next(c for c in log.received if isinstance(c, syncml.Replace))
    assert first.items[0].more_data and first.items[0].meta.size == len(value.encode())
    result = runtime.commands.result(host_id, command.uuid)
    assert result.state is CommandState.DONE and result.status_code == 200


def test_a_large_result_from_the_device_is_assembled(runtime, client, managed) -> None:
    managed.session(client)
    host_id = _host_id(runtime, managed)
    value = "".join(f"line {n};" for n in range(2500))
    managed.nodes["./Device/Vendor/MSFT/Test/Log"] = value
    managed.max_chunk = 3000
    command = runtime.commands.run_syncml(
        [host_id],
        "<Get><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Test/Log</LocURI></Target></Item></Get>",
        actor=None,
    )
    log = managed.session(client)
    assert any(isinstance(c, syncml.Alert) and int(c.data) == 1222 for c in log.received)
    result = runtime.commands.result(host_id, command.uuid)
    assert result.state is CommandState.DONE
    assert [r.items for r in result.replies if r.cmd == "Results"] == [
        (("./Device/Vendor/MSFT/Test/Log", value),)
    ]
