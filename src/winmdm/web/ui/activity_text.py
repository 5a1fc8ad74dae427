"""One line of words for each activity type (design.md §1 "activities"); an unknown type reads
as its name with its details, so a new type written by a service still shows sensibly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from winmdm.domain.management import Activity


def _host(d: Mapping[str, Any]) -> str:
    name = d.get("host_display_name") or d.get("display_name")
    serial = d.get("host_serial") or d.get("serial")
    if name and serial:
        return f"{name} ({serial})"
    return str(name or serial or "a host")


def _team(d: Mapping[str, Any]) -> str:
    return str(d.get("team_name") or "No team")


def _kind(d: Mapping[str, Any]) -> str:
    kind = d.get("enrollment")
    return f" ({kind})" if kind else ""


def _named(d: Mapping[str, Any]) -> str:
    name = d.get("name") or d.get("token_name")
    return f" ({name})" if name else ""


_CLAIMED_IDS = {
    "hw_dev_id": "hardware id",
    "device_id": "MDM device id",
    "serial": "serial number",
    "hardware_uuid": "hardware UUID",
    "mdm_device_id": "MDM device id (read by its osquery agent)",
}


def _conflict(d: Mapping[str, Any]) -> str:
    what = _CLAIMED_IDS.get(str(d.get("matched")), "id")
    other = d.get("claimed_host_display_name") or "another host"
    return (
        f"{_host(d)} reported the {what} of {other} (host {d.get('claimed_host_id')}), which still "
        "checks in: kept as a host of its own"
    )


def _setting(on: bool, what: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda d: f"{'Turned on' if on else 'Turned off'} {what}"


_TEXT: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "fleet_enrolled": lambda d: f"{_host(d)} was added to winmdm",
    "mdm_enrolled": lambda d: f"{_host(d)} turned on MDM{_kind(d)}",
    "mdm_unenrolled": lambda d: f"{_host(d)} turned off MDM",
    "host_identity_conflict": _conflict,
    "host_identity_proven": lambda d: (
        f"{d.get('merged_host_display_name') or 'A host'} (host {d.get('merged_host_id')}) is the same PC as "
        f"{d.get('host_display_name')}, as its osquery agent proved: merged into it"
    ),
    "ran_live_query": lambda d: f"Ran a live query on {_host(d)}",
    "created_policy": lambda d: (
        f"Added the policy {d.get('policy_name')} for {d.get('team_name') or 'every host'}"
    ),
    "deleted_policy": lambda d: f"Deleted the policy {d.get('policy_name')}",
    "deleted_host": lambda d: f"Deleted {_host(d)}",
    "transferred_host": lambda d: (
        f"Moved {_host(d)} from {d.get('previous_team_name') or 'No team'} to {_team(d)}"
    ),
    "created_team": lambda d: f"Created team {_team(d)}",
    "edited_team": lambda d: f"Renamed team {d.get('previous_name')} to {_team(d)}",
    "deleted_team": lambda d: f"Deleted team {_team(d)}",
    "enabled_end_user_authentication": lambda d: f"Turned on end-user authentication for {_team(d)}",
    "disabled_end_user_authentication": lambda d: f"Turned off end-user authentication for {_team(d)}",
    "created_windows_profile": lambda d: f"Added profile {d.get('profile_name')}",
    "deleted_windows_profile": lambda d: f"Deleted profile {d.get('profile_name')}",
    "agent_package_set": lambda d: f"Set the agent package to version {d.get('version')}",
    "created_admin": lambda d: f"Created the {d.get('role')} account {d.get('email')}",
    "deleted_admin": lambda d: f"Deleted the {d.get('role')} account {d.get('email')}",
    "created_api_token": lambda d: f"Created an API token{_named(d)}",
    "revoked_api_token": lambda d: f"Revoked an API token{_named(d)}",
    "created_enrollment_secret": lambda d: f"Created an enrollment secret for {_team(d)}",
    "rotated_enrollment_secrets": lambda d: f"Rotated the enrollment secrets of {_team(d)}",
    "revoked_enrollment_secret": lambda d: f"Revoked an enrollment secret of {_team(d)}",
    "enabled_windows_mdm": _setting(True, "Windows MDM"),
    "disabled_windows_mdm": _setting(False, "Windows MDM"),
    "enabled_windows_mdm_migration": _setting(True, "migration of hosts from another MDM solution"),
    "disabled_windows_mdm_migration": _setting(False, "migration of hosts from another MDM solution"),
    "enabled_windows_mdm_manual_enrollment": lambda d: "Set the end user experience to Manual",
    "disabled_windows_mdm_manual_enrollment": lambda d: "Set the end user experience to Automatic",
}

_COMMANDS = {
    "reboot": "a reboot",
    "wipe": "a wipe",
    "wipe_protected": "a protected wipe",
    "unenroll": "an unenroll",
    "inventory": "a refetch",
    "raw": "a SyncML command",
}


def describe_activity(activity: Activity) -> str:
    details = activity.details or {}
    text = _TEXT.get(activity.type)
    if text is not None:
        try:
            return text(details)
        except Exception:  # a malformed old record still gets a line
            pass
    if activity.type.startswith("command_"):
        kind = activity.type.removeprefix("command_")
        hosts = details.get("host_ids") or []
        count = len(hosts) if isinstance(hosts, list) else 0
        target = "1 host" if count == 1 else f"{count} hosts"
        return f"Sent {_COMMANDS.get(kind, kind.replace('_', ' '))} to {target}"
    words = activity.type.replace("_", " ").capitalize()
    shown = ", ".join(f"{k}: {v}" for k, v in list(details.items())[:4])
    return f"{words} ({shown})" if shown else words
