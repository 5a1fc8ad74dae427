"""Which host a PC is, when all it has to show are ids it reports about itself
(docs/host-identity.md).

HWDevID and DeviceID (in the RequestSecurityToken) and the SMBIOS serial (in DevDetail) are
self-reported: any enrolling PC can send another PC's. They may lead a PC back to its old host
(team, name, history) only when that host cannot be in use: it has no active enrollment (MDM is
off, so it cannot check in), or it has been silent for the configured time (default 30 days).
Otherwise the newcomer becomes a host of its own, and an activity tells the admins which host it
claimed to be. An Entra device id is not self-reported: it comes from a token Entra signed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from winmdm.domain.models import Host
from winmdm.storage.protocols import Transaction

log = logging.getLogger("winmdm.identity")

DEFAULT_MERGE_AFTER = timedelta(days=30)
CONFLICT_ACTIVITY = "host_identity_conflict"


def may_supersede(tx: Transaction, known: Host, now: datetime, merge_after: timedelta) -> bool:
    """Whether a PC that only reports `known`'s ids may become `known` (see the module doc).

    An osquery agent enrolled on `known` is in use as much as an MDM enrollment is: it checks
    in with its own node key (docs/agent-channel.md)."""
    active = tx.enrollments.active_for_host(known.id)
    node = tx.osquery_nodes.for_host(known.id)
    if active is None and node is None:
        return True
    times = (
        known.last_seen_at,
        active.created_at if active is not None else None,
        node.last_seen_at if node is not None else None,
    )
    return now - max(t for t in times if t is not None) >= merge_after


def record_conflict(tx: Transaction, newcomer: Host, known: Host, matched: str, now: datetime) -> None:
    """The activity an admin reads: `newcomer` reported the `matched` id of `known`, which
    still checks in, so both stay hosts of their own."""
    tx.activities.add(
        CONFLICT_ACTIVITY,
        at=now,
        host_id=newcomer.id,
        details={
            "host_display_name": newcomer.display_name,
            "claimed_host_id": known.id,
            "claimed_host_display_name": known.display_name,
            "matched": matched,
        },
    )
    log.warning(
        "host %s reported the %s of host %s, which still checks in: kept apart (docs/host-identity.md)",
        newcomer.id,
        matched,
        known.id,
    )
