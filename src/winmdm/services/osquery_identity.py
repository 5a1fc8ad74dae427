"""Which host an osquery agent is (docs/agent-channel.md "Which host", docs/host-identity.md).

osquery reports the PC's SMBIOS UUID and serial (`system_info.uuid`, `hardware_serial`): both
self-reported, so they follow the rule of services/host_identity.py. They lead an enrolling
agent back to a known host only when that host cannot be in use; otherwise the agent gets a host
of its own and a `host_identity_conflict` activity.

What joins an agent and an MDM enrollment of the same PC while both are in use is a proof, not a
claim: the agent, authenticated by its node key, reads the MDM DeviceID Windows stored for its
own enrollment (the registry value `DeviceClientId`) and reports it. The host of the active
enrollment with that DeviceID is then the same PC: the newer host merges into the older, which
keeps its team (design.md §1). A serial that contradicts (both real, different) keeps them apart.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from winmdm.domain.identity import is_real_serial
from winmdm.domain.models import Host
from winmdm.domain.osquery import AgentNode
from winmdm.services import host_identity
from winmdm.storage.protocols import Transaction

log = logging.getLogger("winmdm.osquery")

PROVEN_ACTIVITY = "host_identity_proven"


def known_host(
    tx: Transaction, hardware_uuid: str | None, serial: str | None, now: datetime, merge_after: timedelta
) -> tuple[Host | None, Host | None, str | None]:
    """(the host an enrolling agent is, the host it claimed but may not take over, which id
    matched): by the hardware UUID an earlier agent of the host reported, else by serial."""
    known, matched = None, None
    node = tx.osquery_nodes.find_by_hardware_uuid(hardware_uuid)
    if node is not None:
        known, matched = tx.hosts.get(node.host_id), "hardware_uuid"
    if known is None and is_real_serial(serial):
        known, matched = tx.hosts.find_by_serial(serial), "serial"
    if known is None:
        return None, None, None
    if host_identity.may_supersede(tx, known, now, merge_after):
        return known, None, matched
    return None, known, matched


def _same_serial(a: str | None, b: str | None) -> bool:
    """False only when both serials are real and differ: a contradiction."""
    if not (is_real_serial(a) and is_real_serial(b)):
        return True
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def join_mdm_enrollment(tx: Transaction, node: AgentNode, device_ids: set[str], now: datetime) -> int:
    """The agent on `node` read these MDM DeviceIDs on its PC: the host of each active enrollment
    with one of them is the same PC. Returns the host id the agent belongs to afterwards."""
    host_id = node.host_id
    for device_id in sorted(device_ids):
        for enrollment in tx.enrollments.active_by_device_id(device_id):
            mine, other = tx.hosts.get(host_id), tx.hosts.get(enrollment.host_id)
            if mine is None or other is None or other.id == mine.id:
                continue
            if not _same_serial(other.serial, node.hardware_serial):
                host_identity.record_conflict(tx, mine, other, "mdm_device_id", now)
                continue
            older, newer = sorted((mine, other), key=lambda h: (h.created_at, h.id))
            tx.hosts.merge_into(newer.id, older.id, now)
            if newer.id == mine.id:  # the agent's host has MDM off: the enrollment's status stays
                tx.inventory.set_mdm_status(older.id, other.mdm_status, now)
            tx.activities.add(
                PROVEN_ACTIVITY,
                at=now,
                host_id=older.id,
                details={
                    "host_display_name": older.display_name,
                    "merged_host_id": newer.id,
                    "merged_host_display_name": newer.display_name,
                    "proof": "the osquery agent read the PC's MDM DeviceID",
                },
            )
            log.info("host %s merged into host %s: its agent read the MDM DeviceID", newer.id, older.id)
            host_id = older.id
    return host_id


def ask_agent(tx: Transaction, host_id: int) -> None:
    """Have the host's agent read the MDM DeviceID at its next distributed read (an MDM
    enrollment reported this host's serial)."""
    node = tx.osquery_nodes.for_host(host_id)
    if node is not None:
        tx.osquery_nodes.mdm_checked(node.id, None)
