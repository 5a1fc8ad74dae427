"""Domain values -> the JSON the API answers (docs/api.md). Secrets and key material never leave."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any

from winmdm.domain.identity import EnrollmentSecret, Team
from winmdm.domain.management import Activity, AgentPackage, HostAgent, HostCommand, HostProfile, Profile


def plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON values (ISO 8601 UTC times)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def page(key: str, items: list[Any], total: int, page_number: int, per_page: int) -> dict[str, Any]:
    return {key: items, "total": total, "page": page_number, "per_page": per_page}


def team(t: Team) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "end_user_authentication": t.end_user_auth,
        "created_at": plain(t.created_at),
    }


def profile(p: Profile, *, with_syncml: bool = False) -> dict[str, Any]:
    out = {
        "id": p.id,
        "team_id": p.team_id or 0,
        "name": p.name,
        "created_at": plain(p.created_at),
        "updated_at": plain(p.updated_at),
    }
    if with_syncml:
        out["syncml"] = p.syncml
    return out


def host_profile(h: HostProfile, names: dict[int, str]) -> dict[str, Any]:
    return {
        "host_id": h.host_id,
        "profile_id": h.profile_id,
        "name": names.get(h.profile_id),
        "status": h.status.value,
        "detail": h.detail,
        "command_uuid": h.command_uuid,
        "updated_at": plain(h.updated_at),
    }


def activity(a: Activity) -> dict[str, Any]:
    return {
        "id": a.id,
        "type": a.type,
        "actor": a.actor,
        "host_id": a.host_id,
        "details": plain(a.details),
        "created_at": plain(a.created_at),
    }


def command_result(h: HostCommand) -> dict[str, Any]:
    return {
        "host_id": h.host_id,
        "command_uuid": h.command.uuid,
        "kind": h.command.kind.value,
        "state": h.state.value,
        "status_code": h.status_code,
        "replies": [
            {"cmd_ref": r.cmd_ref, "cmd": r.cmd, "code": r.code, "items": [list(i) for i in r.items]}
            for r in h.replies
        ],
        "raw_reply": h.raw_reply,
        "payload": h.command.payload,
        "queued_at": plain(h.queued_at),
        "sent_at": plain(h.sent_at),
        "done_at": plain(h.done_at),
    }


def agent_package(p: AgentPackage | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "product_code": p.product_code,
        "version": p.version,
        "sha256": p.sha256,
        "install_args": p.install_args,
        "url": p.url,
        "uploaded": p.content is not None,
        "size": len(p.content) if p.content is not None else None,
        "updated_at": plain(p.updated_at),
    }


def host_agent(a: HostAgent | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "status": a.status.value,
        "last_error": a.last_error,
        "command_uuid": a.command_uuid,
        "updated_at": plain(a.updated_at),
    }


def enrollment_secret(s: EnrollmentSecret) -> dict[str, Any]:
    return {
        "id": s.id,
        "team_id": s.team_id or 0,
        "created_at": plain(s.created_at),
        "revoked_at": plain(s.revoked_at),
        "active": s.revoked_at is None,
    }


def _counts(counts: Any) -> dict[str, int]:
    return {status.value: n for status, n in counts.items()}


def host_summary(h: Any) -> dict[str, Any]:
    return {
        "id": h.id,
        "display_name": h.display_name,
        "serial": h.serial,
        "os_version": h.os_version,
        "os_edition": h.os_edition,
        "team_id": h.team_id or 0,
        "team_name": h.team_name or "No team",
        "mdm_status": h.mdm_status.value,
        "mdm_status_label": h.mdm_status.label,
        "idp_username": h.idp_username,
        "last_seen_at": plain(h.last_seen_at),
        "created_at": plain(h.created_at),
    }


def host_detail(h: Any) -> dict[str, Any]:
    return {
        **host_summary(h),
        "uuid": h.uuid,
        "hw_dev_id": h.hw_dev_id,
        "device_id": h.device_id,
        "team": {"id": h.team_id or 0, "name": h.team_name or "No team"},
        "mdm": {
            "status": h.mdm_status.value,
            "status_label": h.mdm_status.label,
            "status_tooltip": h.mdm_status.tooltip,
            "enrollment_kind": plain(h.enrollment_kind),
            "enrollment_path": h.enrollment_path,
            "idp_username": h.idp_username,
            "end_user_username": h.end_user_username,
            "enrolled_at": plain(h.enrolled_at),
        },
        "inventory": plain(h.inventory),
        "agent": host_agent(h.agent),
        "osquery": osquery_agent(h.osquery),
        "updated_at": plain(h.updated_at),
    }


def osquery_agent(node: Any) -> dict[str, Any] | None:
    """The host's osquery agent; never its node key's hash."""
    if node is None:
        return None
    shown = ("host_identifier", "hardware_uuid", "hardware_serial", "osquery_version", "enrolled_at")
    shown += ("last_seen_at", "status_logs", "result_logs", "last_log_at")
    return {name: plain(getattr(node, name)) for name in shown}


def summary(s: Any) -> dict[str, Any]:
    return {
        "counts": _counts(s.counts),
        "total": s.total,
        "teams": [
            {"team_id": t.team_id or 0, "name": t.name, "counts": _counts(t.counts), "total": t.total}
            for t in s.teams
        ],
    }
