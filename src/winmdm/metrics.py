"""The Prometheus metrics of one running winmdm (docs/operations.md "Metrics").

One `Metrics` per runtime, each with its own registry: two runtimes in one process (the tests)
never share a counter, and nothing lands in prometheus_client's global registry. Counters count
what this process did; with several instances Prometheus sums them across instances.

Label values are bounded (route templates, enum values, known status codes), never raw paths,
device ids or anything a client chooses: a hostile client must not be able to grow the series.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from winmdm import __version__
from winmdm.domain.management import CommandReply, HostCommand
from winmdm.protocol.syncml import Cmd, StatusCode
from winmdm.services import enrollment_path as paths

if TYPE_CHECKING:
    from winmdm.domain.models import Host
    from winmdm.protocol import syncml
    from winmdm.storage.protocols import Transaction

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Seconds. A check-in answers in milliseconds; an enrollment signs a certificate (tens of ms);
# an admin sign-in hashes a password (argon2id, ~50-100 ms); a large MSI upload takes seconds.
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A check-in's transaction is one read and a few writes: fractions of a millisecond to a few ms.
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

_KNOWN_CODES = frozenset(int(code) for code in StatusCode)
# The enrollment paths (services/enrollment_path.py) as short label values for PromQL.
_PATH_LABELS = {
    paths.WORK_ACCOUNT: "work_account",
    paths.MDM_ONLY: "mdm_only",
    paths.ENTRA_JOIN_SETTINGS: "entra_join_settings",
    paths.OOBE: "oobe_autopilot",
    paths.GROUP_POLICY: "group_policy",
    paths.PROGRAMMATIC: "programmatic",
    paths.BULK: "bulk",
    paths.BULK_ENTRA: "bulk_entra_join",
    paths.RENEWAL: "renewal",
}


def path_label(path: str | None) -> str:
    """An enrollment path as a label; "unknown" when the request could not be read that far."""
    return _PATH_LABELS.get(path or "", "unknown")


def status_label(code: int | None) -> str:
    """A SyncML status code as a label: a code of the protocol, else its class ("4xx"), else
    "other". Devices choose the codes; unknown ones must not make a series each."""
    if code is None:
        return "none"
    if code in _KNOWN_CODES:
        return str(code)
    if 100 <= code <= 599:
        return f"{code // 100}xx"
    return "other"


class Metrics:
    """Every metric winmdm exports, registered on a registry of its own."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Gauge("winmdm_build_info", "The running winmdm's version.", ["version"], registry=registry).labels(
            __version__
        ).set(1)
        self.http_requests = Counter(
            "winmdm_http_requests",
            "HTTP requests answered, by route template (not the raw path), method and status.",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "winmdm_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method.",
            ["endpoint", "method"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.enrollments = Counter(
            "winmdm_enrollments",
            "Enrollment requests (MS-WSTEP RequestSecurityToken), by enrollment path and result "
            "(success, or the SOAP fault's code).",
            ["path", "result"],
            registry=registry,
        )
        self.soap_faults = Counter(
            "winmdm_soap_faults",
            "SOAP faults answered on the enrollment endpoints, by fault code.",
            ["code"],
            registry=registry,
        )
        self.checkins = Counter(
            "winmdm_checkins",
            "OMA-DM management messages (check-ins), by result: answered with SyncML, or refused "
            "at the HTTP level (bad_request, unsupported_media_type, too_large, timeout, unavailable).",
            ["result"],
            registry=registry,
        )
        self.syncml_statuses = Counter(
            "winmdm_syncml_statuses",
            "Status codes devices returned for winmdm's commands (each command and child command).",
            ["code"],
            registry=registry,
        )
        self.commands_queued = Counter(
            "winmdm_commands_queued",
            "Commands queued for hosts (one per host), by kind.",
            ["kind"],
            registry=registry,
        )
        self.commands_sent = Counter(
            "winmdm_commands_sent",
            "Commands placed in a management session's answer, by kind.",
            ["kind"],
            registry=registry,
        )
        self.commands_acknowledged = Counter(
            "winmdm_commands_acknowledged",
            "Commands the device answered, by kind and the top-level status it returned.",
            ["kind", "status"],
            registry=registry,
        )
        self.profile_statuses = Counter(
            "winmdm_profile_statuses",
            "Configuration profile statuses recorded for hosts (pending, verifying, verified, failed).",
            ["status"],
            registry=registry,
        )
        self.first_sessions = Counter(
            "winmdm_first_sessions",
            "First management sessions after an enrollment (new hosts' initial commands queued).",
            registry=registry,
        )
        self.device_alerts = Counter(
            "winmdm_device_alerts",
            "Generic and client-event alerts devices sent (1224, 1226), e.g. MSI install results.",
            ["code"],
            registry=registry,
        )
        self.db_transaction = Histogram(
            "winmdm_db_transaction_seconds",
            "Time a database connection is held for one transaction: from taking it from the pool "
            "to its return after commit or rollback.",
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.login_failures = Counter(
            "winmdm_login_failures",
            "Admin sign-ins refused, by reason (wrong_credentials, rate_limited).",
            ["reason"],
            registry=registry,
        )

        # The check-in counter's children, made once: a check-in pays a dict lookup for it.
        self._checkins: dict[str, Any] = {}

    # -- what services report ---------------------------------------------------------------------
    def checkin(self, result: str) -> None:
        child = self._checkins.get(result)
        if child is None:
            child = self._checkins[result] = self.checkins.labels(result)
        child.inc()

    def queued(self, kind: str, hosts: int) -> None:
        if hosts > 0:
            self.commands_queued.labels(str(kind)).inc(hosts)

    def sent(self, kind: str) -> None:
        self.commands_sent.labels(str(kind)).inc()

    def profile_status(self, status: str, hosts: int = 1) -> None:
        if hosts > 0:
            self.profile_statuses.labels(str(status)).inc(hosts)

    def login_failed(self, reason: str) -> None:
        self.login_failures.labels(reason).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (CONTENT_TYPE)."""
        return generate_latest(self.registry)


class MetricsHooks:
    """The management session's hooks (services.management.SessionHooks) that count what
    devices say: it reads only what the session hands it, never the database."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def first_session(self, tx: Transaction, host: Host, now: datetime) -> None:
        self._metrics.first_sessions.inc()

    def replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        metrics = self._metrics
        metrics.commands_acknowledged.labels(
            str(command.command.kind), status_label(command.status_code)
        ).inc()
        for code in _status_codes(command.replies):
            metrics.syncml_statuses.labels(status_label(code)).inc()

    def alerted(self, tx: Transaction, host: Host, alert: syncml.Alert, now: datetime) -> None:
        self._metrics.device_alerts.labels(str(int(alert.data))).inc()


def _status_codes(replies: Iterable[CommandReply]) -> Iterable[int]:
    return (r.code for r in replies if r.code is not None and r.cmd != Cmd.RESULTS.value)
