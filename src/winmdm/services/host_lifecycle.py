"""A host's life: created (by an MDM enrollment or an agent), then as management sessions see
it: turned on, unenrolled by the device, or recognised as a PC winmdm already knows (design.md
§1: known hosts keep their team and history)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from winmdm.domain.identity import is_real_serial
from winmdm.domain.models import Host, MDMStatus
from winmdm.services import host_identity, osquery_identity
from winmdm.storage.protocols import Transaction

log = logging.getLogger("winmdm.management")


def same_pc(tx: Transaction, host: Host, now: datetime, merge_after: timedelta) -> Host:
    """A host whose SMBIOS serial belongs to an older host may be that PC enrolled again (e.g.
    after a reinstall gave it new ids): it merges into the older host, which keeps its team and
    history, but only when the older host cannot be in use (services/host_identity.py); else
    both stay, and the claim is recorded. Placeholder serials are no identity
    (domain.identity.is_real_serial)."""
    if not is_real_serial(host.serial):
        return host
    known = tx.hosts.find_by_serial(host.serial)
    if known is None or known.id == host.id:
        return host
    if not host_identity.may_supersede(tx, known, now, merge_after):
        host_identity.record_conflict(tx, host, known, "serial", now)
        # An osquery agent on the known host can prove it is this PC (docs/agent-channel.md).
        osquery_identity.ask_agent(tx, known.id)
        return host
    # The older host's own enrollment and certificates are superseded by this one.
    tx.enrollments.deactivate_for_host(known.id)
    tx.certificates.revoke_active_for_host(known.id, now, "superseded: the PC enrolled again")
    tx.hosts.merge_into(host.id, known.id, now)
    log.info("host %s has serial %s of host %s: merged into it", host.id, host.serial, known.id)
    return tx.hosts.get(known.id) or host


def created(tx: Transaction, host: Host, now: datetime, *, platform: str, agent: str | None = None) -> None:
    """A new host record: the `fleet_enrolled` activity (design.md §1 activities)."""
    details: dict[str, str | None] = {
        "host_display_name": host.display_name,
        "host_serial": host.serial,
        "platform": platform,
    }
    if agent is not None:
        details["agent"] = agent
    tx.activities.add("fleet_enrolled", at=now, host_id=host.id, details=details)


def turned_on(tx: Transaction, host: Host, now: datetime) -> None:
    """The first session of an enrollment completed: MDM is on (design.md §1 activities)."""
    tx.inventory.set_mdm_status(host.id, MDMStatus.ON, now)
    kind = host.enrollment_kind.value if host.enrollment_kind else None
    tx.activities.add(
        "mdm_enrolled",
        at=now,
        host_id=host.id,
        details={
            "host_serial": host.serial,
            "host_display_name": host.display_name,
            "enrollment": kind,
            "mdm_platform": "microsoft",
        },
    )
    log.info("host %s is managed: MDM on (%s)", host.id, kind)


def unenrolled(tx: Transaction, host: Host, now: datetime) -> None:
    """The user turned MDM off on the PC (1226 unenrollment.userrequest)."""
    tx.inventory.set_mdm_status(host.id, MDMStatus.OFF, now)
    tx.enrollments.deactivate_for_host(host.id)
    tx.certificates.revoke_active_for_host(host.id, now, "unenrolled by the device")
    tx.activities.add(
        "mdm_unenrolled",
        at=now,
        host_id=host.id,
        details={
            "host_serial": host.serial,
            "host_display_name": host.display_name,
            "mdm_platform": "microsoft",
        },
    )
    log.info("host %s unenrolled itself", host.id)
