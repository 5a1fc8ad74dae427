"""Load generator: N emulated Windows PCs checking in at a fixed rate to any winmdm server.

    python benchmarks/load.py --url https://mdm.example.com --devices N --rate R [--duration S]
                              [--commands K] [--ca server-root.pem] [--clients C]
    python benchmarks/load.py --devices 50 --rate 100 --duration 10   # a throwaway local server

What it measures, over real HTTPS, from the devices' side:

- **sessions/s** achieved against the target rate R. A session is one OMA-DM session as Windows
  runs it (tests/support/omadm.py): package 1 with the MD5 digest Cred, then one message per server
  package (Status for each command, Results for each Get), until the server answers with nothing
  but Status and Final. Each device presents its enrollment certificate; by default it opens a new
  TLS connection per session (a PC checks in hours apart), `--keep-alive` keeps one per device.
- **latency** p50/p90/p99/max of the sessions that succeeded, from the time the session was
  *scheduled*: the load is open loop (client processes issue sessions at R per second whatever
  the server does, spread over the devices), so a slow server shows as latency, not as a lower
  rate hidden by back-pressure. Service time (from the actual start), the start lag (how late
  sessions began) and the clients' CPU are printed too, to tell a server that falls behind from a
  client that cannot keep up.
- **commands delivered and acknowledged per second**: `--commands K` per device are queued the
  way an admin does it, `POST /api/v1/hosts/{id}/commands` with an API token, at times spread
  over the run. Each is a Get of a LocURI unique to the command that the emulated device answers
  with its device id. After the timed run, every device still owed a command has its sessions
  until it is acknowledged ("drain"); then each command's `GET /api/v1/commands/{uuid}/results` must
  say done, Status 200 and the right device's Results, and no device may have been given a
  command again after acknowledging it (duplicates, printed, must be 0).
- **errors** by kind: HTTP status, SOAP fault (enrollment), SyncML status (the SyncHdr Status a
  session ended on), connection error, timeout, invalid reply, and sessions still waiting in the
  client when the run was over.

Setup, before any timing: the devices enroll over HTTPS (MS-MDE2, tests/support/device.py) and
have their first session (the inventory Gets). Against `--url` they enroll as a bulk-enrollment
provisioning package does (the package's UPN and an enrollment secret in a WS-Security
UsernameToken), with `--enroll-secret` or a secret the script creates through the API and revokes
at the end; the hosts it enrolled are deleted at the end unless `--keep-hosts`. Without `--url` it
starts `winmdm serve` on a temporary data folder (SQLite, or `--database postgresql://...` for a
throwaway database there), trusting the Entra stand-in of tests/support/entra_issuer.py, and the
devices enroll with its tokens.

The load comes from `--clients` processes (spawned), each owning its share of the devices and
their connections, with up to `--concurrency` sessions in flight. The HTTP client is
`KeepAliveHTTPS` of benchmarks/checkin.py (a minimal HTTP/1.1 client over `ssl`).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import random
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks.checkin, tests.support: the device emulator, the Entra stand-in

import certifi  # noqa: E402
import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn  # noqa: E402

from benchmarks.checkin import KeepAliveHTTPS, Reply, database, tls_context  # noqa: E402
from tests.support.bulk import enroll_with_package  # noqa: E402
from tests.support.device import EnrollmentRefused, WindowsDevice  # noqa: E402
from tests.support.omadm import ManagedDevice  # noqa: E402
from winmdm.cli.api_client import CA_ENV, APIClient, APIError, load_credentials, server_url  # noqa: E402
from winmdm.protocol import syncml  # noqa: E402
from winmdm.protocol.syncml import StatusCode  # noqa: E402
from winmdm.services.bulk import bulk_upn  # noqa: E402

TENANT = "8d1d5a3c-6f7e-4b1a-9c2d-3e4f5a6b7c8d"  # the Entra stand-in's tenant (local server only)
EMAIL = "alice@corp.example"
LOCAL_ADMIN = "load@winmdm.invalid"
MARKER_ROOT = "./Vendor/MSFT/WinMDMLoad"  # the queued Gets: MARKER_ROOT/<run id>/<command number>
SESSION_OK = (StatusCode.OK, StatusCode.AUTHENTICATION_ACCEPTED)
DRAIN_PASSES = 3


# -- the wire ---------------------------------------------------------------------------------
class HTTPStatusError(Exception):
    """The server answered with another HTTP status than the protocol expects."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
        self.status = status


class Connection(KeepAliveHTTPS):
    """benchmarks/checkin.py's keep-alive client, to any server and with a chosen timeout.

    KeepAliveHTTPS dials 127.0.0.1 with a 30 s timeout (it measures a local server); here the
    connection is opened to the server's address before KeepAliveHTTPS takes over. An answer
    other than 200 is raised as HTTPStatusError, so that errors are counted by kind.
    """

    def __init__(self, url: str, context: ssl.SSLContext, address: tuple[str, int], timeout: float) -> None:
        super().__init__(url, context)
        self._address = address
        self._timeout = timeout

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Reply:
        reply = super().post(url, content=content, headers=headers)
        if reply.status_code != 200:
            raise HTTPStatusError(reply.status_code, reply.content)
        return reply

    def _exchange(self, request: bytes) -> Reply:
        if self._sock is None:
            raw = socket.create_connection(self._address, timeout=self._timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = self._context.wrap_socket(raw, server_hostname=self._host)
            self._buffer = b""
            self.connects += 1
        return super()._exchange(request)


def dial(url: str, timeout: float) -> tuple[str, int]:
    """The first address of the URL's host that accepts a connection (`localhost` may be ::1 first
    while the server listens on 127.0.0.1), so that no session pays for a refused attempt."""
    parts = urlsplit(url)
    port = parts.port or 443
    last: OSError | None = None
    for *_, address in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM):
        try:
            with socket.create_connection((address[0], port), timeout=timeout):
                return str(address[0]), port
        except OSError as exc:
            last = exc
    raise last or OSError(f"{parts.hostname} has no address")


def _refuse_non_soap(response: httpx.Response) -> None:
    """Enrollment: a SOAP fault comes as 500 with a SOAP body (EnrollmentRefused); anything else
    but 200 is an HTTP error."""
    if response.status_code != 200 and not response.headers.get("content-type", "").startswith(
        "application/soap+xml"
    ):
        raise HTTPStatusError(response.status_code, b"")


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, HTTPStatusError):
        return f"HTTP {exc.status}"
    if isinstance(exc, EnrollmentRefused):
        return f"SOAP fault {exc.fault.subcode}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, OSError | EOFError | httpx.TransportError):
        return "connection error"
    return "invalid reply"  # the emulator's checks (AssertionError), unparsable SyncML


# -- the devices --------------------------------------------------------------------------------
def marker_prefix(run_id: str) -> str:
    return f"{MARKER_ROOT}/{run_id}/"


def marker_command(run_id: str, seq: int) -> str:
    """The SyncML an admin queues: a Get of a LocURI unique to this command."""
    get = syncml.Get(cmd_id=1, items=(syncml.Item(target=f"{marker_prefix(run_id)}{seq}"),))
    return syncml.build_fragment(get).decode("utf-8")


@dataclass
class LoadDevice(ManagedDevice):
    """The emulator of tests/support/omadm.py, noting the queued commands it is given."""

    prefix: str = ""
    sightings: list[int] = field(default_factory=list)  # this session's queued Gets, by number
    round_trips: int = 0

    def post(self, client: Any, message: syncml.Message) -> syncml.Message:
        reply = super().post(client, message)
        self.round_trips += 1
        for command in reply.commands:
            if isinstance(command, syncml.Get):
                for item in command.items:
                    if (item.target or "").startswith(self.prefix):
                        self.sightings.append(int((item.target or "")[len(self.prefix) :]))
        return reply


@dataclass(eq=False)
class Device:
    managed: LoadDevice
    connection: Connection
    expected: set[int] = field(default_factory=set)  # command numbers queued for it
    seen: set[int] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)  # seen in a session that completed


# -- what a client process counts ----------------------------------------------------------------
@dataclass
class Tally:
    """One phase of one client process (summed over processes by the parent)."""

    scheduled: int = 0  # sessions due in the window
    sessions: int = 0  # completed (the last SyncHdr Status 200 or 212)
    in_window: int = 0  # ... of which ended before the end of the timed window
    round_trips: int = 0
    latencies: list[float] = field(default_factory=list)  # scheduled -> done, completed sessions
    service: list[float] = field(default_factory=list)  # started -> done
    lags: list[float] = field(default_factory=list)  # scheduled -> started
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first error of each kind
    delivered: int = 0  # queued commands given to the devices (each counted once)
    delivered_in_window: int = 0
    acked: int = 0  # ... answered in a session that completed
    acked_in_window: int = 0
    duplicates: int = 0  # given again after the device had acknowledged it
    redelivered: int = 0  # given again after a session that failed (allowed)
    unexpected: int = 0  # a queued command of another device
    other_commands: int = 0  # server commands that were not queued by this run
    cpu: float = 0.0  # CPU seconds of the client process in the phase
    wall: float = 0.0
    processes: int = 0
    workers: int = 0  # session threads (all processes)
    saturated: int = 0  # processes that had every worker busy at some point

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, detail[:300])

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "examples":
                for kind, text in theirs.items():
                    mine.setdefault(kind, text)
            elif name == "wall":
                self.wall = max(mine, theirs)
            elif isinstance(mine, list | Counter):
                mine += theirs
            else:
                setattr(self, name, mine + theirs)

    def snapshot(self) -> tuple[int, int, int]:
        return self.sessions, sum(self.errors.values()), self.acked


@dataclass(frozen=True)
class ClientSpec:
    index: int
    run_id: str
    discovery_url: str
    ca: str
    folder: str
    count: int  # devices to enroll
    tokens: tuple[str, ...]  # Entra stand-in: one access token per device
    upn: str | None  # bulk enrollment: the package's UPN and secret
    secret: str | None
    timeout: float
    concurrency: int
    keep_alive: bool


class LoadClient:
    """Runs in a client process: enrolls its devices, then runs phases on the parent's word."""

    def __init__(self, spec: ClientSpec, conn: Pipe) -> None:
        self.spec = spec
        self._conn = conn
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()  # the tally and the idle devices
        self.devices: list[Device] = []
        self._addresses: dict[str, tuple[str, int]] = {}
        self._prefix = marker_prefix(spec.run_id)

    def send(self, *message: Any) -> None:
        with self._send_lock:
            self._conn.send(message)

    # -- setup ------------------------------------------------------------------------------------
    def enroll(self) -> None:
        """Bulk enrollments run a few at a time (a remote server's round-trips add up); the Entra
        stand-in's run one after the other, since WindowsDevice.enroll takes its key from a
        per-process pool (tests/support/device.py) that is not made for threads."""
        spec, tally = self.spec, Tally()
        trust = ssl.create_default_context(cafile=spec.ca)
        hooks = {"response": [_refuse_non_soap]}
        threads = min(spec.concurrency, 8, max(spec.count, 1)) if spec.secret is not None else 1
        started = time.monotonic()
        with (
            httpx.Client(verify=trust, timeout=spec.timeout, event_hooks=hooks) as http,
            ThreadPoolExecutor(threads) as pool,
        ):
            for _ in pool.map(lambda n: self._enroll_one(n, http, tally), range(spec.count)):
                pass
        tally.wall = time.monotonic() - started
        self.send("enrolled", [(d.managed.device.device_id, d.managed.serial) for d in self.devices], tally)

    def _enroll_one(self, n: int, http: httpx.Client, tally: Tally) -> None:
        spec = self.spec
        device = WindowsDevice()
        try:
            if spec.secret is not None and spec.upn is not None:
                enroll_with_package(http, device, spec.upn, spec.secret, spec.discovery_url)
            else:
                device.enroll(http, spec.discovery_url, email=EMAIL, token=spec.tokens[n])
            serial = f"WINMDMLOAD-{spec.run_id}-{spec.index}-{n}"
            managed = LoadDevice(device, serial=serial, prefix=self._prefix)
            url = managed.device.enrolled.management_url  # type: ignore[union-attr]
            host = urlsplit(url).hostname or ""
            with self._lock:
                if host not in self._addresses:
                    self._addresses[host] = dial(url, spec.timeout)
            context = tls_context(managed, Path(spec.ca), Path(spec.folder) / f"certs-{spec.index}")
            ready = Device(managed, Connection(url, context, self._addresses[host], spec.timeout))
            first = managed.session(ready.connection)  # the inventory Gets
            if first.header_codes[-1] not in SESSION_OK:
                raise AssertionError(f"the first session ended with SyncHdr Status {first.header_codes}")
            if not spec.keep_alive:
                ready.connection.close()
        except Exception as exc:
            with self._lock:
                tally.error(error_kind(exc), f"{type(exc).__name__}: {exc}")
            self.send("enrolling", 0, 1)
            return
        with self._lock:
            self.devices.append(ready)
        self.send("enrolling", 1, 0)

    def expect(self, markers: dict[str, list[int]]) -> None:
        """The commands the parent will queue for each device; the device can answer their Gets."""
        for device in self.devices:
            numbers = markers.get(device.managed.device.device_id, [])
            device.expected = set(numbers)
            for seq in numbers:
                device.managed.nodes[f"{self._prefix}{seq}"] = device.managed.device.device_id

    # -- one session --------------------------------------------------------------------------------
    def session(self, device: Device, scheduled: float, end: float | None, tally: Tally) -> None:
        started = time.monotonic()
        managed = device.managed
        managed.sightings.clear()
        managed.round_trips = 0
        failure: tuple[str, str] | None = None
        other = 0
        try:
            log = managed.session(device.connection)
            code = log.header_codes[-1]
            if code not in SESSION_OK:
                failure = (f"SyncML {code}", f"the session ended with SyncHdr Status {log.header_codes}")
            other = sum(1 for c in log.received if not self._is_marker(c))
        except Exception as exc:  # counted by kind, never dropped
            failure = (error_kind(exc), f"{type(exc).__name__}: {exc}")
        if failure is not None or not self.spec.keep_alive:
            device.connection.close()
        done = time.monotonic()
        in_window = end is None or done <= end
        with self._lock:
            tally.lags.append(started - scheduled)
            for seq, times in Counter(managed.sightings).items():
                if seq not in device.expected:
                    tally.unexpected += times
                    continue
                tally.duplicates += times - 1  # twice in one session
                if seq in device.acked:
                    tally.duplicates += 1
                elif seq in device.seen:
                    tally.redelivered += 1
                else:
                    device.seen.add(seq)
                    tally.delivered += 1
                    tally.delivered_in_window += in_window
            if failure is not None:
                tally.error(*failure)
                return
            for seq in set(managed.sightings) & device.expected - device.acked:
                device.acked.add(seq)
                tally.acked += 1
                tally.acked_in_window += in_window
            tally.sessions += 1
            tally.in_window += in_window
            tally.round_trips += managed.round_trips
            tally.other_commands += other
            tally.latencies.append(done - scheduled)
            tally.service.append(done - started)

    def _is_marker(self, command: syncml.Command) -> bool:
        items = getattr(command, "items", ())
        return isinstance(command, syncml.Get) and all(
            (i.target or "").startswith(self._prefix) for i in items
        )

    # -- the phases ---------------------------------------------------------------------------------
    def run(self, start_at: float, seconds: float, rate: float, offset: float) -> Tally:
        """Open loop: session n is due at start + (n + offset) / rate whatever happened before;
        it goes to the device idle longest. A session not started `timeout` after the end of the
        window is counted, not run."""
        tally, end = Tally(), start_at + seconds
        idle = deque(self.devices)
        late = end + self.spec.timeout
        workers = max(1, min(self.spec.concurrency, len(self.devices)))

        def job(scheduled: float) -> None:
            if time.monotonic() > late:
                with self._lock:
                    tally.error("not started (client backlog)", "still queued in the client after the run")
                return
            with self._lock:
                device = idle.popleft()  # never empty: no more workers than devices
                tally.saturated = max(tally.saturated, int(len(self.devices) - len(idle) == workers))
            try:
                self.session(device, scheduled, end, tally)
            finally:
                with self._lock:
                    idle.append(device)

        reporting = threading.Event()
        reporter = threading.Thread(target=self._report, args=(tally, reporting), daemon=True)
        cpu = time.process_time()
        with ThreadPoolExecutor(workers, thread_name_prefix="session") as pool:
            time.sleep(max(0.0, start_at - time.monotonic()))
            reporter.start()
            n = 0
            while self.devices and (due := start_at + (n + offset) / rate) < end:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                pool.submit(job, due)
                n += 1
        tally.cpu, tally.wall, tally.scheduled = time.process_time() - cpu, seconds, n
        tally.processes, tally.workers = 1, workers
        reporting.set()
        reporter.join()
        return tally

    def drain(self, queued: set[int]) -> tuple[Tally, int, int]:
        """Sessions for every device still owed a queued command, up to DRAIN_PASSES each."""
        tally = Tally()
        for device in self.devices:
            device.expected &= queued
        workers = max(1, min(self.spec.concurrency, len(self.devices)))
        for _ in range(DRAIN_PASSES):
            owed = [d for d in self.devices if d.expected - d.acked]
            if not owed:
                break
            with ThreadPoolExecutor(workers, thread_name_prefix="drain") as pool:
                for device in owed:
                    pool.submit(lambda d: self.session(d, time.monotonic(), None, tally), device)
        never = sum(len(d.expected - d.seen) for d in self.devices)
        unacked = sum(len(d.expected - d.acked) for d in self.devices)
        return tally, never, unacked

    def _report(self, tally: Tally, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            with self._lock:
                snapshot = tally.snapshot()
            self.send("progress", snapshot)

    def close(self) -> None:
        for device in self.devices:
            device.connection.close()


def client_main(conn: Pipe, spec: ClientSpec) -> None:
    """The client process: its devices, then one phase per message of the parent."""
    client = LoadClient(spec, conn)
    try:
        client.enroll()
        while True:
            message = conn.recv()
            if message[0] == "expect":
                client.expect(message[1])
            elif message[0] == "run":
                client.send("ran", client.run(*message[1:]))
            elif message[0] == "drain":
                client.send("drained", *client.drain(message[1]))
            else:
                break
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException:
        client.send("failed", traceback.format_exc())
    finally:
        client.close()


class Clients:
    """The client processes, spawned (one Python process cannot drive much TLS)."""

    def __init__(self, specs: list[ClientSpec]) -> None:
        context = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.processes: list[Any] = []
        for spec in specs:
            parent, child = context.Pipe()
            process = context.Process(
                target=client_main, args=(child, spec), name=f"load-client-{spec.index}", daemon=True
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.progress: list[tuple[int, int, int]] = [(0, 0, 0)] * len(specs)

    def send(self, index: int, *message: Any) -> None:
        self.pipes[index].send(message)

    def collect(
        self, kind: str, on_message: Callable[[int, tuple[Any, ...]], None], tick: Callable[[], None]
    ) -> list[tuple[Any, ...]]:
        """Every process's `kind` answer (its other messages go to on_message), in process order."""
        answers: list[Any] = [None] * len(self.pipes)
        while any(a is None for a in answers):
            waiting = [p for p, a in zip(self.pipes, answers, strict=True) if a is None]
            for pipe in wait(waiting, timeout=0.1):
                index = self.pipes.index(pipe)  # type: ignore[arg-type]
                try:
                    message = pipe.recv()  # type: ignore[union-attr]
                except EOFError:
                    raise SystemExit(f"client process {index} died") from None
                if message[0] == "failed":
                    raise SystemExit(f"client process {index} failed:\n{message[1]}")
                if message[0] == kind:
                    answers[index] = message[1:]
                elif message[0] == "progress":
                    self.progress[index] = message[1]
                else:
                    on_message(index, message)
            tick()
        return answers

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()


# -- the server under load ------------------------------------------------------------------------
@dataclass
class Target:
    label: str
    api: APIClient
    ca: Path  # what the devices trust for the server's TLS
    discovery_url: str
    tokens: Callable[[int], list[str]] | None = None  # the Entra stand-in (local server)
    upn: str | None = None  # bulk enrollment (any server)
    secret: str | None = None
    remote: bool = False
    log_path: Path | None = None


def default_trust() -> Path:
    """The system's CA bundle (or certifi's): each device's TLS context loads it whole, so give
    --ca with the server's root for many devices."""
    found = ssl.get_default_verify_paths().cafile
    return Path(found) if found and Path(found).exists() else Path(certifi.where())


def remote_trust(url: str, given: Path | None) -> Path | None:
    """The server's TLS root as the CLI finds it: --ca, WINMDM_CA_FILE, or the one of the stored
    `winmdm login` to this server."""
    if given is not None:
        return given
    if os.environ.get(CA_ENV):
        return Path(os.environ[CA_ENV])
    stored = load_credentials()
    if stored is not None and stored.server == url and stored.ca_file:
        return Path(stored.ca_file)
    return None


@contextlib.contextmanager
def remote_target(args: argparse.Namespace) -> Iterator[Target]:
    url = server_url(args.url)
    ca = remote_trust(url, args.ca)
    api = APIClient.configured(url, str(ca) if ca else None)
    created: dict[str, Any] | None = None
    try:
        server = api.get("/config")["server"]
        secret = args.enroll_secret or os.environ.get("WINMDM_ENROLL_SECRET")
        how = "the enrollment secret given"
        if not secret:
            created = api.post(f"/teams/{args.team}/enrollment_secrets")
            secret, how = created["secret"], f"a new enrollment secret of team {args.team}"
        yield Target(
            label=f"{api.server} (bulk enrollment with {how})",
            api=api,
            ca=ca or default_trust(),
            discovery_url=server["discovery_url"],
            upn=bulk_upn(urlsplit(server["server_url"]).hostname or ""),
            secret=secret,
            remote=True,
        )
    finally:
        if created is not None:
            with contextlib.suppress(APIError):
                api.delete(f"/teams/{args.team}/enrollment_secrets/{created['id']}")
        api.close()


@contextlib.contextmanager
def local_target(args: argparse.Namespace) -> Iterator[Target]:
    """`winmdm serve` on a temporary data folder, trusting the Entra stand-in; a maintainer
    account made with `winmdm admin create` signs in to the API as an admin would."""
    from tests.support.entra_issuer import EntraIssuer
    from tests.support.server import start_server, winmdm_command

    with (
        tempfile.TemporaryDirectory(prefix="winmdm-load-") as tmp,
        EntraIssuer() as issuer,
        database(args.database, Path(tmp) / "data") as (url, label, _),
    ):
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": issuer.jwks_url,
            "WINMDM_LOG_LEVEL": args.log_level,
        }
        server = start_server(Path(tmp) / "data", env)
        api: APIClient | None = None
        try:
            password = secrets.token_urlsafe(24)
            create = [*winmdm_command(), "admin", "create", "--email", LOCAL_ADMIN, "--role", "maintainer"]
            made = subprocess.run(
                [*create, "--password", "-"],
                env=server.env,
                input=password,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if made.returncode != 0:
                raise SystemExit(f"winmdm admin create failed: {made.stderr.strip()}")
            with APIClient(server.url, None, str(server.dev_ca)) as anonymous:
                token = anonymous.post("/login", {"email": LOCAL_ADMIN, "password": password})["token"]
            api = APIClient(server.url, token, str(server.dev_ca))
            yield Target(
                label=f"{server.url} (a throwaway local `winmdm serve`, {label}; Entra stand-in)",
                api=api,
                ca=server.dev_ca,
                discovery_url=api.get("/config")["server"]["discovery_url"],
                tokens=lambda n: [issuer.token(tenant_id=TENANT, audience=server.url) for _ in range(n)],
                log_path=server.log_path,
            )
        finally:
            if api is not None:
                api.close()
            server.stop()


# -- the admin's side: hosts and commands through the API -------------------------------------------
def find_hosts(api: APIClient, run_id: str, devices: list[tuple[str, str]]) -> dict[str, int]:
    """device id -> host id: by the run's serial numbers (the inventory of the first session),
    then by device id for any not found that way."""
    by_serial = {serial: device_id for device_id, serial in devices}
    found: dict[str, int] = {}
    page = 1
    while True:
        answer = api.get("/hosts", query=f"WINMDMLOAD-{run_id}-", page=page, per_page=500)
        for host in answer["hosts"]:
            if host["serial"] in by_serial:
                found[by_serial[host["serial"]]] = host["id"]
        if page * 500 >= answer["total"]:
            break
        page += 1
    for device_id, _ in devices:
        if device_id not in found:
            hosts = api.get("/hosts", query=device_id)["hosts"]
            if len(hosts) == 1:
                found[device_id] = hosts[0]["id"]
    return found


@dataclass
class Queued:
    uuids: dict[int, str] = field(default_factory=dict)  # command number -> command uuid
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


def queue_commands(
    api: APIClient,
    run_id: str,
    plan: list[tuple[float, int, int]],  # (seconds after the start, command number, host id)
    start_at: float,
    workers: int,
    stop: threading.Event,
) -> Queued:
    """POST /api/v1/hosts/{id}/commands at the planned times (from a few threads)."""
    queued, lock = Queued(), threading.Lock()

    def post(seq: int, host_id: int) -> None:
        began = time.monotonic()
        try:
            answer = api.post(f"/hosts/{host_id}/commands", {"syncml": marker_command(run_id, seq)})
        except APIError as exc:
            with lock:
                kind = f"API {exc.code or 'unreachable'}"
                queued.errors[kind] += 1
                queued.examples.setdefault(kind, exc.message)
            return
        with lock:
            queued.uuids[seq] = answer["command_uuid"]
            queued.latencies.append(time.monotonic() - began)

    with ThreadPoolExecutor(workers, thread_name_prefix="api") as pool:
        for at, seq, host_id in plan:
            if stop.wait(max(0.0, start_at + at - time.monotonic())):
                break
            pool.submit(post, seq, host_id)
    return queued


def verify(
    api: APIClient, queued: Queued, owner: dict[int, tuple[str, int]], workers: int
) -> tuple[Counter[str], dict[str, str]]:
    """Each queued command's results: done, Status 200, the owner's Results, one delivery."""
    verdicts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    lock = threading.Lock()

    def check(seq: int, command_uuid: str) -> None:
        device_id, host_id = owner[seq]
        try:
            results = api.get(f"/commands/{command_uuid}/results")["results"]
        except APIError as exc:
            verdict, detail = f"API {exc.code}", exc.message
        else:
            mine = [r for r in results if r["host_id"] == host_id]
            values = [i[1] for r in mine for reply in r["replies"] for i in reply["items"]]
            if len(results) != 1 or len(mine) != 1:
                verdict, detail = "wrong hosts", f"{len(results)} deliveries"
            elif mine[0]["state"] != "done":
                verdict, detail = f"not acknowledged ({mine[0]['state']})", command_uuid
            elif mine[0]["status_code"] != 200:
                verdict, detail = f"Status {mine[0]['status_code']}", command_uuid
            elif values != [device_id]:
                verdict, detail = "wrong Results", f"{values!r} for {device_id}"
            else:
                verdict, detail = "acknowledged", ""
        with lock:
            verdicts[verdict] += 1
            examples.setdefault(verdict, detail)

    with ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool:
        for seq, command_uuid in queued.uuids.items():
            pool.submit(check, seq, command_uuid)
    return verdicts, examples


def delete_hosts(api: APIClient, host_ids: list[int], workers: int) -> int:
    def delete(host_id: int) -> bool:
        try:
            api.delete(f"/hosts/{host_id}")
            return True
        except APIError:
            return False

    with ThreadPoolExecutor(workers, thread_name_prefix="cleanup") as pool:
        return sum(pool.map(delete, host_ids))


# -- the run --------------------------------------------------------------------------------------
def percentile(ordered: list[float], q: float) -> float:
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Display:
    """A rich progress bar on a terminal; a line now and then otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._printed = 0.0

    @contextlib.contextmanager
    def phase(self, description: str, total: float) -> Iterator[None]:
        if not self.live:
            print(f"{description} ...", flush=True)
            self._printed = time.monotonic()
            yield
            return
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, TextColumn("{task.fields[stats]}"), console=self.console) as progress:
            self._progress = progress
            self._task = progress.add_task(description, total=total, stats="")
            yield
            progress.update(self._task, completed=total)
            self._progress = None

    def update(self, completed: float, stats: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, stats=stats)
        elif time.monotonic() - self._printed >= 10:
            self._printed = time.monotonic()
            print(f"  {stats}", flush=True)


def run(args: argparse.Namespace, target: Target, display: Display) -> int:
    run_id = secrets.token_hex(3).upper()
    clients = max(1, min(args.clients, args.devices))
    shares = [len(range(i, args.devices, clients)) for i in range(clients)]
    interval = args.devices / args.rate
    connection = (
        "one keep-alive TLS connection per device" if args.keep_alive else "a new TLS connection per session"
    )
    print(f"winmdm load: {target.label}")
    print(
        f"{args.devices} devices in {clients} client processes; {args.rate:g} sessions/s for "
        f"{args.duration:g} s, open loop (each device every {interval:.2f} s); {args.commands} queued "
        f"command(s) per device; {connection}; run {run_id}",
        flush=True,
    )
    tokens = target.tokens(args.devices) if target.tokens else []
    with tempfile.TemporaryDirectory(prefix="winmdm-load-certs-") as folder:
        specs = [
            ClientSpec(
                index=i,
                run_id=run_id,
                discovery_url=target.discovery_url,
                ca=str(target.ca),
                folder=folder,
                count=shares[i],
                tokens=tuple(tokens[i::clients]),
                upn=target.upn,
                secret=target.secret,
                timeout=args.timeout,
                concurrency=args.concurrency,
                keep_alive=args.keep_alive,
            )
            for i in range(clients)
        ]
        pool = Clients(specs)
        try:
            return _drive(args, target, display, pool, run_id)
        finally:
            pool.close()


def _drive(args: argparse.Namespace, target: Target, display: Display, pool: Clients, run_id: str) -> int:
    devices = enroll_phase(args, display, pool)
    if not devices:
        print("no device enrolled: nothing to run")
        return 1
    cleanup = target.remote and not args.keep_hosts
    wanted = args.commands or cleanup
    host_ids = find_hosts(target.api, run_id, [(d, s) for _, d, s in devices]) if wanted else {}
    owner, markers = command_plan(args, devices, host_ids, len(pool.pipes))
    for index, mine in enumerate(markers):
        pool.send(index, "expect", mine)
    timed, queued = timed_phase(args, target, display, pool, run_id, devices, owner)

    # drain: every device still owed a command checks in until it has answered it
    drain, never, unacked = Tally(), 0, 0
    if owner:
        for index, mine in enumerate(markers):
            pool.send(index, "drain", set(queued.uuids) & {seq for seqs in mine.values() for seq in seqs})
        for answer in pool.collect("drained", lambda *_: None, lambda: None):
            drain.add(answer[0])
            never += answer[1]
            unacked += answer[2]
    verdicts, examples = verify(target.api, queued, owner, args.api_workers) if owner else (Counter(), {})
    deleted = delete_hosts(target.api, list(host_ids.values()), args.api_workers) if cleanup else None
    return report(args, target, timed, drain, queued, len(owner), never, unacked, verdicts, examples, deleted)


def enroll_phase(args: argparse.Namespace, display: Display, pool: Clients) -> list[tuple[int, str, str]]:
    """The clients enroll their devices and run their first session: (client, device id, serial)."""
    counts = [0, 0]
    started = time.monotonic()

    def counted(_: int, message: tuple[Any, ...]) -> None:
        counts[0] += message[1]
        counts[1] += message[2]

    def tick() -> None:
        display.update(sum(counts), f"{counts[0]} enrolled, {counts[1]} failed")

    with display.phase(f"enrolling {args.devices} devices", args.devices):
        answers = pool.collect("enrolled", counted, tick)
    enroll_seconds = max(answer[1].wall for answer in answers)
    ready_seconds = time.monotonic() - started
    devices = [(i, device_id, serial) for i, a in enumerate(answers) for device_id, serial in a[0]]
    setup = Tally()
    for answer in answers:
        setup.add(answer[1])
    print(
        f"enrolled {len(devices)} devices over HTTPS and ran their first (inventory) session in "
        f"{enroll_seconds:.1f} s ({len(devices) / max(enroll_seconds, 1e-9):.1f}/s; "
        f"{ready_seconds:.1f} s with starting the client processes); {sum(setup.errors.values())} failed",
        flush=True,
    )
    _print_errors(setup.errors, setup.examples)
    return devices


def command_plan(
    args: argparse.Namespace, devices: list[tuple[int, str, str]], host_ids: dict[str, int], clients: int
) -> tuple[dict[int, tuple[str, int]], list[dict[str, list[int]]]]:
    """Command numbers: their (device id, host id), and each client's {device id: numbers}."""
    owner: dict[int, tuple[str, int]] = {}
    markers: list[dict[str, list[int]]] = [{} for _ in range(clients)]
    for n, (client, device_id, _) in enumerate(devices):
        if device_id not in host_ids:
            continue
        for k in range(args.commands):
            seq = n * args.commands + k
            owner[seq] = (device_id, host_ids[device_id])
            markers[client].setdefault(device_id, []).append(seq)
    if args.commands and len(host_ids) < len(devices):
        missing = len(devices) - len(host_ids)
        print(f"!! {missing} enrolled devices have no host in the API: no commands for them")
    return owner, markers


def timed_phase(
    args: argparse.Namespace,
    target: Target,
    display: Display,
    pool: Clients,
    run_id: str,
    devices: list[tuple[int, str, str]],
    owner: dict[int, tuple[str, int]],
) -> tuple[Tally, Queued]:
    """The open-loop run, while the commands are queued through the API in a thread: spread
    evenly (in random order) until one check-in interval before the end, so that most are
    delivered within the window."""
    window = max(args.duration - args.devices / args.rate, args.duration / 2)
    order = list(owner)
    random.Random(run_id).shuffle(order)
    plan = [((m + 0.5) * window / len(order), seq, owner[seq][1]) for m, seq in enumerate(order)]
    start_at = time.monotonic() + 0.5
    clients = len(pool.pipes)
    for index in range(clients):
        mine = sum(1 for c, _, _ in devices if c == index)
        rate = args.rate * max(mine, 1) / len(devices)  # a client without devices runs nothing
        pool.send(index, "run", start_at, args.duration, rate, index / clients)
    stop = threading.Event()
    queued: list[Queued] = []

    def feed() -> None:
        queued.append(queue_commands(target.api, run_id, plan, start_at, args.api_workers, stop))

    feeder = threading.Thread(target=feed, name="queue-commands", daemon=True)
    feeder.start()

    def tick() -> None:
        elapsed = min(args.duration, max(0.0, time.monotonic() - start_at))
        sessions, errors, acked = (sum(x) for x in zip(*pool.progress, strict=True))
        rate = sessions / elapsed if elapsed > 0.5 else 0.0
        display.update(
            elapsed,
            f"{elapsed:4.0f}/{args.duration:g} s  {sessions} sessions ({rate:.0f}/s)  {errors} errors  "
            f"{acked}/{len(plan)} commands acknowledged",
        )

    try:
        with display.phase("running", args.duration):
            answers = pool.collect("ran", lambda *_: None, tick)
    finally:
        feeder.join(timeout=args.duration + 10 * args.timeout)
        stop.set()
    feeder.join()
    timed = Tally()
    for answer in answers:
        timed.add(answer[0])
    return timed, queued[0]


def _print_errors(errors: Counter[str], examples: dict[str, str], indent: str = "  ") -> None:
    for kind, n in errors.most_common():
        print(f"{indent}{kind:<34}{n:>8}   e.g. {examples.get(kind, '')}")


def report(
    args: argparse.Namespace,
    target: Target,
    timed: Tally,
    drain: Tally,
    queued: Queued,
    planned: int,
    never: int,
    unacked: int,
    verdicts: Counter[str],
    verdict_examples: dict[str, str],
    deleted: int | None,
) -> int:
    latencies, service, lags = sorted(timed.latencies), sorted(timed.service), sorted(timed.lags)
    duration = args.duration
    errors = sum(timed.errors.values())
    print("\n== results ==")
    print(
        f"sessions:        {timed.sessions} completed of {timed.scheduled} scheduled "
        f"({timed.in_window} within the {duration:g} s window): {timed.in_window / duration:.1f}/s "
        f"achieved, target {args.rate:g}/s"
    )
    print(f"round-trips:     {timed.round_trips / max(timed.sessions, 1):.2f} HTTP requests per session")
    print(
        "latency:         "
        + "  ".join(f"{name} {percentile(latencies, q):.1f} ms" for name, q in (("p50", 0.5), ("p90", 0.9)))
        + f"  p99 {percentile(latencies, 0.99):.1f} ms  max {1000 * latencies[-1] if latencies else 0:.1f} ms"
        "   (from the scheduled time, completed sessions)"
    )
    print(
        f"service time:    p50 {percentile(service, 0.5):.1f} ms  p99 {percentile(service, 0.99):.1f} ms"
        f"   start lag p99 {percentile(lags, 0.99):.1f} ms   client CPU {100 * timed.cpu / duration:.0f} % of"
        " one core (all client processes)"
    )
    busy = timed.cpu / duration / max(timed.processes, 1)
    if busy > 0.8:
        print(
            f"  note: each client process was on CPU {100 * busy:.0f} % of the time: the figures may be the "
            "client's; add --clients (on more cores or machines)"
        )
    elif lags and percentile(lags, 0.99) > 50 and timed.saturated:
        print(
            f"  note: sessions waited for a free worker ({timed.workers} in all, --concurrency per process "
            "up to its devices): the server answered slower than the rate needs; the wait is part of the "
            "latency, as in any open-loop test"
        )
    elif lags and percentile(lags, 0.99) > 50:
        print(
            "  note: the client processes started sessions late without being busy themselves: other "
            "load on this machine? (the latency includes it)"
        )
    print(f"errors:          {errors}")
    _print_errors(timed.errors, timed.examples)
    if planned:
        q_lat = sorted(queued.latencies)
        print(
            f"commands:        {len(queued.uuids)} queued of {planned} through the API "
            f"(POST p50 {percentile(q_lat, 0.5):.1f} ms, p99 {percentile(q_lat, 0.99):.1f} ms); "
            f"{sum(queued.errors.values())} refused"
        )
        _print_errors(queued.errors, queued.examples)
        print(
            f"                 in the window: {timed.delivered_in_window} delivered "
            f"({timed.delivered_in_window / duration:.1f}/s), {timed.acked_in_window} acknowledged "
            f"({timed.acked_in_window / duration:.1f}/s); "
            f"after it: {timed.delivered - timed.delivered_in_window}"
            f" + {drain.delivered} in {drain.sessions} drain sessions ({sum(drain.errors.values())} failed)"
        )
        _print_errors(drain.errors, drain.examples)
        if timed.other_commands + drain.other_commands:
            print(
                f"                 also {timed.other_commands + drain.other_commands} other server commands"
            )
        acknowledged = verdicts["acknowledged"]
        print(
            f"acknowledged:    {acknowledged} of {len(queued.uuids)} (GET /api/v1/commands/<uuid>/results: "
            f"done, Status 200, the device's Results)"
        )
        for verdict, n in verdicts.most_common():
            if verdict != "acknowledged":
                print(f"  {verdict:<34}{n:>8}   e.g. {verdict_examples.get(verdict, '')}")
        duplicates = timed.duplicates + drain.duplicates
        print(f"duplicates:      {duplicates} (a command given again after the device acknowledged it)")
        print(
            f"                 redelivered after a failed session {timed.redelivered + drain.redelivered}, "
            f"never delivered {never}, not acknowledged by the device {unacked}, "
            f"another device's command {timed.unexpected + drain.unexpected}"
        )
        ok = duplicates == 0 and acknowledged == len(queued.uuids) == planned and not never
        why = "every queued command delivered once and acknowledged" if ok else "see commands above"
    else:
        ok, why = True, "no commands queued"
    if deleted is not None:
        print(f"cleanup:         deleted {deleted} hosts of this run (--keep-hosts keeps them)")
    if target.log_path is not None and errors:
        _server_log_excerpt(target.log_path)
    print(f"verdict:         {'OK' if ok else 'FAILED'} ({why})")
    return 0 if ok else 1


def _server_log_excerpt(path: Path) -> None:
    with contextlib.suppress(OSError):
        lines = [
            line
            for line in path.read_text(errors="replace").splitlines()
            if "ERROR" in line or "WARN" in line
        ]
        if lines:
            print(f"server log ({len(lines)} warnings/errors), first ones:")
            for line in lines[:5]:
                print(f"  {line[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
without --url: a throwaway local `winmdm serve` (SQLite, or --database), devices enrolled with the
Entra stand-in's tokens, commands queued by a maintainer made with `winmdm admin create`.

with --url (a real server; nothing else is needed than what an operator has):
  API      an API token of a maintainer or admin: WINMDM_API_TOKEN, or the CLI's stored login
           (`winmdm login --server URL --email ...` first)
  enroll   as a bulk-enrollment provisioning package (no browser): --enroll-secret or
           WINMDM_ENROLL_SECRET (`winmdm enrollment-secret create`), else a secret made for
           --team through the API and revoked at the end; Windows MDM must be on
  TLS      --ca: the server's TLS root (PEM), for the API and the devices (or as the CLI finds it)
  cleanup  the run's hosts (serials WINMDMLOAD-<run>-*) are deleted at the end unless --keep-hosts

exit status: 0 when every queued command was delivered once and acknowledged, 1 if not, 2 when
the API refused or could not be reached.
""",
    )
    parser.add_argument("--url", help="the winmdm server (https://host[:port]); none: start a local one")
    parser.add_argument("--devices", type=int, default=50, help="emulated PCs to enroll (50)")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="target sessions per second, all devices (50)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (10)")
    parser.add_argument("--commands", type=int, default=1, help="commands queued per device over the run (1)")
    parser.add_argument(
        "--ca",
        "--ca-file",
        dest="ca",
        type=Path,
        help="--url: PEM of the server's TLS root; default: WINMDM_CA_FILE, the stored `winmdm login`'s, "
        "else the system's CA bundle (which costs each device ~1 MB and ~30 ms: give --ca for "
        "thousands of devices)",
    )
    parser.add_argument(
        "--enroll-secret", help="an enrollment secret (bulk enrollment) of the server (--url)"
    )
    parser.add_argument(
        "--team", type=int, default=0, help="team whose secret is created with --url (0: No team)"
    )
    parser.add_argument(
        "--keep-hosts", action="store_true", help="--url: leave the enrolled hosts on the server"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes (2)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="sessions in flight per client process (64)"
    )
    parser.add_argument("--keep-alive", action="store_true", help="reuse one TLS connection per device")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for any answer (30)")
    parser.add_argument(
        "--api-workers", type=int, default=4, help="threads queueing commands via the API (4)"
    )
    parser.add_argument(
        "--database",
        default="sqlite",
        help="local server: sqlite, or a postgresql:// URL for a throwaway database",
    )
    parser.add_argument(
        "--log-level", default="info", help="local server: WINMDM_LOG_LEVEL (info, as shipped)"
    )
    args = parser.parse_args(argv)
    if args.devices < 1 or args.rate <= 0 or args.duration <= 0 or args.commands < 0 or args.clients < 1:
        parser.error("--devices and --clients must be at least 1, --rate and --duration positive")
    display = Display(Console())
    try:
        with remote_target(args) if args.url else local_target(args) as target:
            return run(args, target, display)
    except APIError as exc:
        print(f"winmdm API: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
