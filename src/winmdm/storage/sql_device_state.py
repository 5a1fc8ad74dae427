"""The one read of a management message (issue "check-in hot path"): every active enrollment
claiming the DeviceID, with its host, session, waiting-command flag and agent status, and the
record of the presented certificate, in one statement.

An idle check-in used to run a query per store (enrollments, certificate, host, session, queue,
agent): each costs more in the driver and SQLAlchemy than in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
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
_DEVICE_STATE = (
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


def _part(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {name: row[label] for name, label in _NAMES[prefix]}


def read_device_state(
    conn: Connection, device_id: str, certificate_serial: str | None
) -> tuple[DeviceState, dict[int, HostAgent | None]]:
    """The state, and the agent status of each claim's host (for the transaction's AgentStore)."""
    claims: list[DeviceClaim] = []
    agents: dict[int, HostAgent | None] = {}
    certificate = None
    for result in conn.execute(_DEVICE_STATE, {"device_id": device_id, "serial": certificate_serial}):
        row = result._mapping
        host_row = _part(row, "h")
        host = host_from_row(host_row)
        session = None if row["s__enrollment_id"] is None else session_from_row(_part(row, "s"))
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
                commands_waiting=bool(row["commands_waiting"]),
            )
        )
        if certificate is None and row["c__serial"] is not None:
            certificate = certificate_from_row(_part(row, "c"))
        agent = _part(row, "a")
        agents[host.id] = None if agent["host_id"] is None else HostAgent(**agent)
    return DeviceState(claims=tuple(claims), certificate=certificate), agents
