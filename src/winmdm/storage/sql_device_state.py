"""The one read of a management message (issue "check-in hot path"): every active enrollment
claiming the DeviceID, with its host, session, waiting-command flag and agent status, and the
record of the presented certificate, in one statement.

An idle check-in used to run a query per store (enrollments, certificate, host, session, queue,
agent): each costs more in the driver and SQLAlchemy than in the database. The one statement
runs on the driver's cursor (sql_driver.py): SQLAlchemy's execution and row objects cost more
than SQLite's work on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from winmdm.domain.management import CommandState, DeviceClaim, DeviceState, HostAgent, Inventory
from winmdm.storage.schema import (
    device_certificates,
    enrollments,
    host_agent,
    host_commands,
    hosts,
    mdm_sessions,
)
from winmdm.storage.sql_commands import session_from_row
from winmdm.storage.sql_driver import DriverStatement
from winmdm.storage.sql_rows import certificate_from_row, enrollment_from_row, host_from_row

_TABLES = {"e": enrollments, "h": hosts, "s": mdm_sessions, "c": device_certificates, "a": host_agent}
# A DeviceID is self-reported: several PCs may claim one (docs/host-identity.md). A bound keeps
# a flood of claims from making every message of the real device slow.
MAX_CLAIMS = 8

_WAITING = (
    sa.exists()
    .where(
        host_commands.c.host_id == enrollments.c.host_id,
        # Not IN (...): an expanding parameter is compiled again on every execution.
        sa.or_(host_commands.c.state == CommandState.PENDING, host_commands.c.state == CommandState.SENT),
    )
    .label("commands_waiting")
)
_NAMES = {prefix: [(c.name, f"{prefix}__{c.name}") for c in table.c] for prefix, table in _TABLES.items()}
_COLUMNS = [table.c[name].label(label) for p, table in _TABLES.items() for name, label in _NAMES[p]]
# Where each table's columns sit in a row: (column name, index).
_AT = {label: n for n, label in enumerate([c.name for c in _COLUMNS] + ["commands_waiting"])}
_PARTS = {prefix: [(name, _AT[label]) for name, label in names] for prefix, names in _NAMES.items()}
_DEVICE_STATE = DriverStatement(
    sa.select(*_COLUMNS, _WAITING)
    .select_from(
        enrollments.join(hosts, hosts.c.id == enrollments.c.host_id)
        .outerjoin(mdm_sessions, mdm_sessions.c.enrollment_id == enrollments.c.id)
        .outerjoin(device_certificates, device_certificates.c.serial == sa.bindparam("serial", type_=sa.Text))
        .outerjoin(host_agent, host_agent.c.host_id == enrollments.c.host_id)
    )
    .where(
        enrollments.c.device_id == sa.bindparam("device_id", type_=sa.Text),
        enrollments.c.active.is_(True),
    )
    .order_by(enrollments.c.id.desc())
    .limit(MAX_CLAIMS)
)


def _part(row: Sequence[Any], prefix: str) -> dict[str, Any]:
    return {name: row[n] for name, n in _PARTS[prefix]}


def read_device_state(
    conn: Connection, device_id: str, certificate_serial: str | None
) -> tuple[DeviceState, dict[int, HostAgent | None]]:
    """The state, and the agent status of each claim's host (for the transaction's AgentStore)."""
    claims: list[DeviceClaim] = []
    agents: dict[int, HostAgent | None] = {}
    certificate = None
    for row in _DEVICE_STATE.rows(conn, {"device_id": device_id, "serial": certificate_serial}):
        host_row = _part(row, "h")
        host = host_from_row(host_row)
        session = None if row[_AT["s__enrollment_id"]] is None else session_from_row(_part(row, "s"))
        claims.append(
            DeviceClaim(
                enrollment=enrollment_from_row(_part(row, "e")),
                host=host,
                inventory=Inventory(
                    manufacturer=host_row["manufacturer"],
                    model=host_row["model"],
                    os_version=host_row["os_version"],
                    serial=host_row["serial"],
                    device_name=host_row["display_name"],
                    language=host_row["language"],
                    dm_version=host_row["dm_version"],
                ),
                session=session,
                commands_waiting=bool(row[_AT["commands_waiting"]]),
            )
        )
        if certificate is None and row[_AT["c__serial"]] is not None:
            certificate = certificate_from_row(_part(row, "c"))
        agent = _part(row, "a")
        agents[host.id] = None if agent["host_id"] is None else HostAgent(**agent)
    return DeviceState(claims=tuple(claims), certificate=certificate), agents
