"""The agent channel: a stock osquery speaking its TLS remote API (docs/agent-channel.md).

osquery enrolls with an enroll secret and gets a node key, then sends that key with every
config, logger and distributed read/write request. Any answer with `"node_invalid": true` makes
it forget the key and enroll again (osquery/remote/utility.h). The enroll secrets are winmdm's
per-team enrollment secrets (services/bulk.py): a team's secret puts a new host in that team.
Node keys are 256-bit random values stored as their SHA-256, like the secrets.

Every method takes the request's parsed JSON body and raises winmdm errors: NodeInvalid for a
missing, unknown or replaced node key or a wrong enroll secret, MalformedMessage for a body
that is not what osquery sends.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from winmdm.domain.management import Inventory
from winmdm.domain.models import MDMStatus, NewHost
from winmdm.domain.osquery import AgentNode, NewAgentNode
from winmdm.errors import AuthenticationFailed, MalformedMessage
from winmdm.services import host_identity, host_lifecycle, osquery_identity
from winmdm.services.bulk import secret_hash
from winmdm.storage.agent_logs import LOG_TYPES, AgentLogSink
from winmdm.storage.protocols import Storage, Transaction

log = logging.getLogger("winmdm.osquery")

# What osquery reports is stored as text of at most this many characters.
MAX_TEXT = 512
MAX_NODE_KEY = 256
MAX_SECRET = 256
# Live queries go to the agent with these names; winmdm's own query has its own.
LIVE_QUERY_PREFIX = "winmdm_live_"
LIVE_QUERIES_PER_READ = 20
LIVE_QUERY_MAX_ROWS = 1000
MDM_DEVICE_ID_QUERY = "winmdm_mdm_device_id"
# Policies go with these names, all of the host's at once, once an hour (docs/policies.md).
POLICY_PREFIX = "winmdm_policy_"
POLICY_EVERY = timedelta(hours=1)
MAX_POLICIES = 500
# The MDM DeviceID Windows keeps for its enrollment (docs/agent-channel.md "Which host").
MDM_DEVICE_ID_SQL = (
    "SELECT data FROM registry WHERE path = "
    "'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Provisioning\\OMADM\\MDMDeviceID\\DeviceClientId';"
)
MDM_CHECK_EVERY = timedelta(hours=1)
# osquery's PlatformType bit for Windows (osquery/utils/info/platform_type.h).
WINDOWS_PLATFORM_BIT = 0x02


class NodeInvalid(AuthenticationFailed):
    """osquery must enroll (again): answered with `"node_invalid": true`."""


def node_key_hash(node_key: str) -> str:
    return hashlib.sha256(node_key.encode("utf-8")).hexdigest()


def _is_credential(value: object, limit: int) -> bool:
    """Whether `value` can be a secret or node key at all: a non-blank string of at most `limit`
    characters that UTF-8 can encode (JSON's \\ud800 escape gives a lone surrogate, which none
    has and which hashing could not encode)."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A reported value as storable text: strings only, no NUL, no lone surrogate, bounded."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8").strip()
    return cleaned[:limit] or None


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedMessage(f'"{key}" must be a JSON object')
    return value


def is_windows(node: AgentNode) -> bool:
    try:
        return bool(int(node.platform_type or "0") & WINDOWS_PLATFORM_BIT)
    except ValueError:
        return False


class OsqueryAgents:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        *,
        merge_after: timedelta = host_identity.DEFAULT_MERGE_AFTER,
        token: Callable[[int], str] = secrets.token_urlsafe,
        logs: AgentLogSink | None = None,
    ) -> None:
        self._storage = storage
        self._logs = logs
        self._clock = clock
        self._merge_after = merge_after
        self._token = token

    # --- enroll ---------------------------------------------------------------------------

    def enroll(self, body: dict[str, Any]) -> str:
        """A node key for the agent; its host is found or created (osquery_identity.py)."""
        secret = body.get("enroll_secret")
        if not _is_credential(secret, MAX_SECRET):
            raise NodeInvalid("enroll failed: send the team's enroll secret (osquery --enroll_secret_path)")
        details = _object(body, "host_details")
        system = _object(details, "system_info")
        osquery_info = _object(details, "osquery_info")
        os_version = _object(details, "os_version")
        hardware_uuid = text(system.get("uuid"))
        serial = text(system.get("hardware_serial"))
        identifier = text(body.get("host_identifier"))
        name = text(system.get("computer_name")) or text(system.get("hostname")) or identifier
        now = self._clock()
        node_key = self._token(32)
        with self._storage.transaction() as tx:
            found = tx.enrollment_secrets.find_active(secret_hash(secret))
            if found is None or not hmac.compare_digest(found.secret_hash, secret_hash(secret)):
                raise NodeInvalid(
                    "enroll failed: the enroll secret is unknown or was rotated; "
                    "ask your administrator for the team's current secret"
                )
            known, claimed, matched = osquery_identity.known_host(
                tx, hardware_uuid, serial, now, self._merge_after
            )
            if known is not None:
                host = known  # a known host keeps its team (design.md §1)
                log.info("osquery re-enrolled as host %s (%s): node key replaced", host.id, matched)
            else:
                host = tx.hosts.create(
                    NewHost(
                        uuid=str(uuid.uuid4()),
                        display_name=name or "osquery host",
                        hw_dev_id=None,
                        device_id=None,
                        os_version=text(os_version.get("version")),
                        os_edition=text(os_version.get("name")),
                        idp_username=None,
                        created_at=now,
                        team_id=found.team_id,
                        serial=serial,
                        mdm_status=MDMStatus.OFF,
                    )
                )
                tx.inventory.record_inventory(
                    host.id,
                    Inventory(
                        manufacturer=text(system.get("hardware_vendor")),
                        model=text(system.get("hardware_model")),
                    ),
                    now,
                )
                platform = text(os_version.get("platform")) or "windows"
                host_lifecycle.created(tx, host, now, platform=platform, agent="osquery")
                if claimed is not None:
                    host_identity.record_conflict(tx, host, claimed, matched or "serial", now)
                log.info("osquery enrolled: new host %s in team %s", host.id, found.team_id)
            tx.osquery_nodes.replace(
                NewAgentNode(
                    host_id=host.id,
                    node_key_hash=node_key_hash(node_key),
                    host_identifier=identifier,
                    hardware_uuid=hardware_uuid,
                    hardware_serial=serial,
                    platform_type=text(body.get("platform_type"), 16),
                    osquery_version=text(osquery_info.get("version"), 64),
                    enrolled_at=now,
                )
            )
        return node_key

    # --- authenticated requests -------------------------------------------------------------

    def _node(self, tx: Transaction, node_key: object, now: datetime) -> AgentNode:
        if node_key is None or (isinstance(node_key, str) and not node_key.strip()):
            raise NodeInvalid("missing node key: enroll first")
        if not _is_credential(node_key, MAX_NODE_KEY):
            raise NodeInvalid(
                f"malformed node key (not a string of at most {MAX_NODE_KEY} characters): enroll again"
            )
        wanted = node_key_hash(node_key)
        node = tx.osquery_nodes.by_key_hash(wanted)
        if node is None or not hmac.compare_digest(node.node_key_hash, wanted):
            raise NodeInvalid("unknown node key: enroll again")
        tx.osquery_nodes.seen(node.id, now)
        return node

    def config(self, body: dict[str, Any]) -> dict[str, Any]:
        """The osquery configuration: an empty schedule (live queries and policies go through
        the distributed API instead; docs/agent-channel.md)."""
        now = self._clock()
        with self._storage.transaction() as tx:
            self._node(tx, body.get("node_key"), now)
        return {"schedule": {}, "node_invalid": False}

    def write_logs(self, body: dict[str, Any]) -> None:
        """Status and result logs are counted, and written to the log files once the request is
        known to be the agent's (docs/agent-channel.md "Logs")."""
        log_type, data = body.get("log_type"), body.get("data")
        now = self._clock()
        with self._storage.transaction() as tx:
            node = self._node(tx, body.get("node_key"), now)
            if log_type not in LOG_TYPES:
                raise MalformedMessage('"log_type" must be "status" or "result"')
            if not isinstance(data, list):
                raise MalformedMessage('"data" must be a JSON array of log lines')
            counts = {"status": 0, "result": 0, log_type: len(data)}
            tx.osquery_nodes.count_logs(node.id, status=counts["status"], result=counts["result"], at=now)
        if self._logs is not None and data:
            self._logs.write(log_type, node.host_id, data)

    def distributed_read(self, body: dict[str, Any]) -> dict[str, Any]:
        """The live queries waiting for the host, and winmdm's MDM DeviceID query when due."""
        now = self._clock()
        with self._storage.transaction() as tx:
            node = self._node(tx, body.get("node_key"), now)
            pending = tx.live_queries.take_pending(node.host_id, limit=LIVE_QUERIES_PER_READ, at=now)
            queries = {f"{LIVE_QUERY_PREFIX}{q.id}": q.sql for q in pending}
            ran = node.policies_run_at
            if ran is None or now - ran >= POLICY_EVERY:
                host = tx.hosts.get(node.host_id)
                policies = tx.policies.for_team(host.team_id if host is not None else None)
                queries.update({f"{POLICY_PREFIX}{p.id}": p.sql for p in policies[:MAX_POLICIES]})
                tx.osquery_nodes.policies_sent(node.id, now)
            checked = node.mdm_checked_at
            if is_windows(node) and (checked is None or now - checked >= MDM_CHECK_EVERY):
                queries[MDM_DEVICE_ID_QUERY] = MDM_DEVICE_ID_SQL
                tx.osquery_nodes.mdm_checked(node.id, now)
        return {"queries": queries, "node_invalid": False}

    def distributed_write(self, body: dict[str, Any]) -> None:
        """Results of the queries of earlier reads; unknown names are ignored."""
        results, statuses, messages = (_object(body, k) for k in ("queries", "statuses", "messages"))
        now = self._clock()
        with self._storage.transaction() as tx:
            node = self._node(tx, body.get("node_key"), now)
            applicable: set[int] | None = None  # the host's policies, read at the first answer
            # winmdm's MDM DeviceID query last: it may merge the agent's host into another.
            names = sorted(set(results) | set(statuses), key=lambda n: (n == MDM_DEVICE_ID_QUERY, n))
            for name in names[: LIVE_QUERIES_PER_READ + MAX_POLICIES + 1]:
                rows = results.get(name) or []
                status = statuses.get(name, 0)
                if not isinstance(rows, list) or not isinstance(status, int) or isinstance(status, bool):
                    raise MalformedMessage(f'the result of "{text(name, 64)}" is not rows and a status code')
                if name == MDM_DEVICE_ID_QUERY:
                    if status == 0:
                        ids = {text(r.get("data")) for r in rows[:4] if isinstance(r, dict)}
                        osquery_identity.join_mdm_enrollment(tx, node, {i for i in ids if i}, now)
                elif (policy_id := _id_after(name, POLICY_PREFIX)) is not None:
                    if applicable is None:
                        applicable = _applicable_policies(tx, node)
                    if policy_id in applicable:  # still there, and still the host's (team moves)
                        passes = bool(rows) if status == 0 else None  # no answer when it failed
                        tx.policies.record(policy_id, node.host_id, passes, at=now)
                elif (query_id := _id_after(name, LIVE_QUERY_PREFIX)) is not None:
                    kept = [_row(r) for r in rows[:LIVE_QUERY_MAX_ROWS]]
                    tx.live_queries.record_result(
                        node.host_id,
                        query_id,
                        status=max(min(status, 2**31 - 1), -(2**31)),
                        message=text(messages.get(name), 2048),
                        rows=kept,
                        row_count=len(rows),
                        at=now,
                    )


def _id_after(name: str, prefix: str) -> int | None:
    """The id in a query name winmdm gave (`winmdm_live_12`); None for any other name, or an
    id no row can have."""
    digits = name[len(prefix) :] if name.startswith(prefix) else ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10 or int(digits) > 2**31 - 1:
        return None
    return int(digits)


def _applicable_policies(tx: Transaction, node: AgentNode) -> set[int]:
    """Ids of the policies the node's host runs now: a host passes with a row, fails without."""
    host = tx.hosts.get(node.host_id)
    return set() if host is None else {p.id for p in tx.policies.for_team(host.team_id)}


def _row(row: object) -> dict[str, Any]:
    """One result row as osquery sends it (column -> string), cleaned for storage."""
    if not isinstance(row, dict):
        raise MalformedMessage("a result row must be a JSON object")
    return {str(text(str(k), 128)): _cell(v) for k, v in list(row.items())[:256]}


def _cell(value: object) -> object:
    """A value as sent (osquery's are strings, empty ones included), made storable: JSON's
    1e999 reads as inf, which no JSON column takes (PostgreSQL's refuses it), so it is null."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:4096]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if isinstance(value, int | bool) or value is None else None
