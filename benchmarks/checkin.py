"""Idle OMA-DM check-ins per second over real HTTPS to one `winmdm serve`, beside a bare hello.

    python benchmarks/checkin.py [--database sqlite|postgresql://...]... [--seconds N] [--profile]

A check-in is one OMA-DM session with nothing queued: package 1 (SyncHdr with the MD5 digest
Cred over the current nonce, Alert 1201, Alert 1224, Replace DevInfo) POSTed by an enrolled
device over TLS with its enrollment certificate, answered by winmdm with only Status (212 and a
new nonce for the SyncHdr, 200 for each command) and Final. The hello is `GET /healthz` on the
same server, same app, same connections: what uvicorn + Starlette + TLS cost per request with
no winmdm work at all. Their ratio says how much of the server's time is winmdm's own.

The server is the real `winmdm serve` in a subprocess (uvicorn, httptools, uvloop, TLS asking for
client certificates), pinned with `taskset` to one core; the load comes from client processes
pinned to the other cores, one keep-alive TLS connection per device, each process running its
devices' sessions one after the other (closed loop). Devices are enrolled over HTTPS by the
emulator of tests/support/device.py and have had their first session (inventory) before timing,
so every timed session is idle; every reply is checked (212, a new nonce, no commands).

Rates are counted two ways: per wall-clock second, and per CPU-second the server process used
(all its threads, from /proc/<pid>/task/*/schedstat). The second is the honest "per core"
figure when the clients cannot keep the server's core busy (it says how busy it was).
Hello and check-in rounds alternate, so other load on the machine hits both alike.

`--profile` then stops the server and runs the same sessions in-process through
`ManagementService.handle` (no HTTP), timed and under cProfile, to show where winmdm's part goes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the device emulator, the Entra stand-in, the server runner

import httpx  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from tests.support.device import Enrolled, WindowsDevice  # noqa: E402
from tests.support.entra_issuer import EntraIssuer  # noqa: E402
from tests.support.omadm import SYNCML, ManagedDevice, SessionLog  # noqa: E402
from tests.support.server import RunningServer, start_server, winmdm_command  # noqa: E402
from winmdm.protocol import provisioning  # noqa: E402
from winmdm.protocol.syncml import StatusCode  # noqa: E402

TENANT = "8d1d5a3c-6f7e-4b1a-9c2d-3e4f5a6b7c8d"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_RATIO = 0.4
GOAL_PER_CORE = 1000


# -- the transport -------------------------------------------------------------------------------
@dataclass(slots=True)
class Reply:
    """The part of an httpx.Response the emulator reads."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class KeepAliveHTTPS:
    """A minimal HTTP/1.1 client on one keep-alive TLS connection (with the device's certificate).

    It offers the `post` the emulator calls and a `get`, like httpx.Client, at a fraction of
    httpx's per-request cost in the client: the clients share the machine with the server, and
    a slow client would measure itself. It reconnects (and counts it) if the server closed the
    connection while idle.
    """

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        parts = urlsplit(url)
        self._address = ("127.0.0.1", parts.port or 443)
        self._host = parts.hostname or "localhost"
        self._host_header = f"{self._host}:{parts.port}" if parts.port else self._host
        self._context = context
        self._sock: ssl.SSLSocket | None = None
        self._buffer = b""
        self.connects = 0
        self.reconnects: dict[str, int] = {}  # why a kept-alive connection had to be replaced

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Reply:
        return self._request("POST", url, content, headers)

    def get(self, url: str) -> Reply:
        return self._request("GET", url, b"", {})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> KeepAliveHTTPS:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if method != "GET":
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        reused = self._sock is not None
        try:
            return self._exchange(request)
        except (ConnectionError, ssl.SSLError, EOFError) as exc:
            self.close()
            if not reused:
                raise
            reason = type(exc).__name__
            self.reconnects[reason] = self.reconnects.get(reason, 0) + 1
            return self._exchange(request)  # the server closed an idle keep-alive connection

    def _exchange(self, request: bytes) -> Reply:
        if self._sock is None:
            raw = socket.create_connection(self._address, timeout=30)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = self._context.wrap_socket(raw, server_hostname=self._host)
            self._buffer = b""
            self.connects += 1
        sock = self._sock
        sock.sendall(request)
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv(sock)
        head, rest = buffer[:end].decode("latin-1").split("\r\n"), buffer[end + 4 :]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])  # Starlette sets it on every response here
        while len(rest) < length:
            rest += self._recv(sock)
        self._buffer = rest[length:]
        if headers.get("connection", "").lower() == "close":
            self.reconnects["Connection: close"] = self.reconnects.get("Connection: close", 0) + 1
            self.close()
        return Reply(status, headers, rest[:length])

    @staticmethod
    def _recv(sock: ssl.SSLSocket) -> bytes:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        return chunk


class HttpxTransport:
    """httpx.Client (what the emulator normally uses), for comparing client costs (`--client httpx`)."""

    def __init__(self, url: str, context: ssl.SSLContext) -> None:
        self._client = httpx.Client(verify=context, timeout=30)
        self.connects = 0  # not visible through httpx; reported as 0
        self.reconnects: dict[str, int] = {}

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Any:
        return self._client.post(url, content=content, headers=headers)

    def get(self, url: str) -> Any:
        return self._client.get(url)

    def close(self) -> None:
        self._client.close()


TRANSPORTS = {"raw": KeepAliveHTTPS, "httpx": HttpxTransport}


# -- devices, shipped between processes ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceState:
    """An enrolled, managed device in picklable form (the emulator holds unpicklable keys)."""

    device_id: str
    hw_dev_id: str | None
    raw_document: bytes
    certificate_der: bytes
    key_pem: bytes
    root_der: bytes
    management_url: str
    enrollment_url: str
    provider_id: str
    serial: str
    nonce: bytes

    @classmethod
    def of(cls, managed: ManagedDevice) -> DeviceState:
        enrolled = managed.device.enrolled
        assert enrolled is not None
        return cls(
            device_id=managed.device.device_id,
            hw_dev_id=managed.device.hw_dev_id,
            raw_document=enrolled.raw_document,
            certificate_der=enrolled.certificate.public_bytes(serialization.Encoding.DER),
            key_pem=enrolled.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            root_der=enrolled.root.public_bytes(serialization.Encoding.DER),
            management_url=enrolled.management_url,
            enrollment_url=enrolled.enrollment_url,
            provider_id=enrolled.provider_id,
            serial=managed.serial,
            nonce=managed.nonce,
        )

    def managed(self) -> ManagedDevice:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        device = WindowsDevice(device_id=self.device_id, hw_dev_id=self.hw_dev_id)
        device.enrolled = Enrolled(
            document=provisioning.parse_document(self.raw_document),
            certificate=x509.load_der_x509_certificate(self.certificate_der),
            key=key,  # type: ignore[arg-type]
            root=x509.load_der_x509_certificate(self.root_der),
            management_url=self.management_url,
            enrollment_url=self.enrollment_url,
            provider_id=self.provider_id,
            raw_document=self.raw_document,
        )
        managed = ManagedDevice(device, serial=self.serial)
        managed.nonce = self.nonce
        return managed


def tls_context(managed: ManagedDevice, ca: Path, folder: Path) -> ssl.SSLContext:
    """Trust the server's dev CA; present the device's enrollment certificate (as Windows does)."""
    enrolled = managed.device.enrolled
    assert enrolled is not None
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{managed.device.device_id}.crt", folder / f"{managed.device.device_id}.key"
    cert.write_bytes(enrolled.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        enrolled.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def check_idle(log: SessionLog) -> None:
    """One message each way: 212 with a new nonce for the SyncHdr, nothing but Status."""
    if log.header_codes != [StatusCode.AUTHENTICATION_ACCEPTED] or log.received:
        raise AssertionError(
            f"not an idle check-in: SyncHdr codes {log.header_codes}, {len(log.received)} server commands"
        )
    chal = log.replies[0].commands[0].chal  # type: ignore[union-attr]
    if chal is None or not chal.meta.next_nonce:
        raise AssertionError("the 212 carries no NextNonce")


# -- the client processes ------------------------------------------------------------------------
@dataclass
class RoundResult:
    kind: str
    count: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    connects: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)


def _reasons(transports: list[Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for transport in transports:
        for reason, n in transport.reconnects.items():
            total[reason] = total.get(reason, 0) + n
    return total


def client_process(conn: Any, spec: dict[str, Any]) -> None:
    """Runs in a client process: holds its devices' connections and runs rounds on command."""
    if spec["cpus"]:
        os.sched_setaffinity(0, spec["cpus"])
    devices = [state.managed() for state in spec["devices"]]
    folder = Path(spec["folder"])
    transport_class = TRANSPORTS[spec["client"]]
    transports = [
        transport_class(spec["url"], tls_context(d, Path(spec["ca"]), folder / "certs")) for d in devices
    ]
    hello_url = spec["url"] + "/healthz"
    i = 0  # round-robin position, kept across rounds so every device takes its turn
    try:
        for transport in transports:  # open every connection (TLS handshake) before any timing
            transport.get(hello_url)
        conn.send("ready")
        while True:
            command = conn.recv()
            if command[0] == "stop":
                break
            if command[0] == "nonces":
                conn.send({d.device.device_id: d.nonce for d in devices})
                continue
            _, kind, start_at, end_at = command
            result = RoundResult(kind)
            connects_before, reasons_before = sum(t.connects for t in transports), _reasons(transports)
            while time.monotonic() < start_at:
                time.sleep(min(0.005, max(0.0, start_at - time.monotonic())))
            now = time.monotonic()
            while now < end_at:
                device, transport = devices[i % len(devices)], transports[i % len(transports)]
                i += 1
                begin = time.perf_counter()
                try:
                    if kind == "hello":
                        reply = transport.get(hello_url)
                        if reply.status_code != 200 or reply.content != b"ok":
                            raise AssertionError(f"hello answered {reply.status_code} {reply.content[:80]!r}")
                    else:
                        check_idle(device.session(transport))
                except Exception as exc:  # counted and reported, never silently dropped
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
                    transport.close()
                    if result.errors > 100:
                        break
                    now = time.monotonic()
                    continue
                elapsed = time.perf_counter() - begin
                now = time.monotonic()
                if now <= end_at:  # only what completed inside the window counts
                    result.count += 1
                    result.latencies.append(elapsed)
            result.connects = sum(t.connects for t in transports) - connects_before
            result.reconnects = {
                k: v - reasons_before.get(k, 0)
                for k, v in _reasons(transports).items()
                if v > reasons_before.get(k, 0)
            }
            conn.send(result)
    finally:
        for transport in transports:
            transport.close()


# -- CPU accounting --------------------------------------------------------------------------
def process_cpu(pid: int) -> float:
    """Seconds on CPU of all threads of a process (schedstat: nanoseconds, precise)."""
    return sum(thread_cpu(pid))


def thread_cpu(pid: int) -> tuple[float, float]:
    """Seconds on CPU of a process's main thread (uvicorn's event loop) and of its other threads
    (the management thread, anyio's workers, the pool's), from schedstat."""
    main = others = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(FileNotFoundError, ProcessLookupError),
                open(f"/proc/{pid}/task/{task}/schedstat") as f,
            ):
                ns = int(f.read().split()[0])
            if task == str(pid):
                main += ns
            else:
                others += ns
    return main / 1e9, others / 1e9


def servers_cpu(pids: Sequence[int]) -> tuple[float, float]:
    """`thread_cpu` added up over several server processes."""
    split = [thread_cpu(pid) for pid in pids]
    return sum(main for main, _ in split), sum(others for _, others in split)


def backend_pids(database_name: str) -> list[int]:
    """PostgreSQL backends serving our database (their title names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode("latin-1")
            if title.startswith("postgres:") and f" {database_name} " in title:
                pids.append(int(entry))
    return pids


def cpu_times(cpu: int) -> dict[str, float]:
    """Jiffies of one CPU from /proc/stat: total, idle, softirq (network), steal (the hypervisor)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return {"total": sum(v[:8]), "idle": v[3] + v[4], "softirq": v[6], "steal": v[7]}
    return {"total": 0, "idle": 0, "softirq": 0, "steal": 0}


@dataclass
class Measured:
    kind: str
    count: int = 0
    wall: float = 0.0
    server_cpu: float = 0.0
    loop_cpu: float = 0.0  # of server_cpu, the main thread's (the event loop)
    backend_cpu: float = 0.0
    core: dict[str, float] = field(default_factory=dict)  # jiffies of the server's CPU, by kind
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    connects: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    rounds: list[float] = field(default_factory=list)  # per-core rate of each round

    def add(self, other: Measured) -> None:
        self.count += other.count
        self.wall += other.wall
        self.server_cpu += other.server_cpu
        self.loop_cpu += other.loop_cpu
        self.backend_cpu += other.backend_cpu
        for kind, n in other.core.items():
            self.core[kind] = self.core.get(kind, 0) + n
        self.latencies += other.latencies
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.connects += other.connects
        for reason, n in other.reconnects.items():
            self.reconnects[reason] = self.reconnects.get(reason, 0) + n
        self.rounds.append(other.per_core)

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall else 0.0

    @property
    def per_core(self) -> float:
        return self.count / self.server_cpu if self.server_cpu else 0.0

    @property
    def utilisation(self) -> float:
        return self.server_cpu / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """The client processes, started with their share of the devices.

    `spec["urls"]`, when given, spreads them over several servers (benchmarks/scale.py): client
    process n talks to urls[n % len(urls)], so each device keeps one server, as behind a load
    balancer that keeps a connection on one instance.
    """

    def __init__(
        self, states: list[DeviceState], clients: int, spec: dict[str, Any], cpus: set[int] | None
    ) -> None:
        context = mp.get_context("spawn")
        urls = spec.get("urls") or [spec["url"]]
        self._pipes = []
        self._processes = []
        for n in range(clients):
            share = states[n::clients]
            parent, child = context.Pipe()
            process = context.Process(
                target=client_process,
                args=(child, {**spec, "url": urls[n % len(urls)], "devices": share, "cpus": cpus}),
                name=f"checkin-client-{n}",
                daemon=True,
            )
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if not pipe.poll(120) or pipe.recv() != "ready":
                raise SystemExit(f"client process {process.name} did not start")

    def round(
        self,
        kind: str,
        seconds: float,
        server_pid: int | Sequence[int],
        server_cpu: int | None,
        database_name: str | None,
    ) -> Measured:
        """One timed round; with several server pids, their CPU is added up."""
        pids = [server_pid] if isinstance(server_pid, int) else list(server_pid)
        start_at = time.monotonic() + 0.3
        end_at = start_at + seconds
        for pipe in self._pipes:
            pipe.send(("run", kind, start_at, end_at))
        time.sleep(max(0.0, start_at - time.monotonic()))
        backends = backend_pids(database_name) if database_name else []
        (main0, others0), back0, core0 = (
            servers_cpu(pids),
            sum(map(process_cpu, backends)),
            cpu_times(server_cpu or 0),
        )
        time.sleep(max(0.0, end_at - time.monotonic()))
        (main1, others1), back1, core1 = (
            servers_cpu(pids),
            sum(map(process_cpu, backends)),
            cpu_times(server_cpu or 0),
        )
        measured = Measured(
            kind,
            wall=seconds,
            server_cpu=(main1 + others1) - (main0 + others0),
            loop_cpu=main1 - main0,
            backend_cpu=back1 - back0,
            core={kind: core1[kind] - core0[kind] for kind in core1},
        )
        for pipe in self._pipes:
            result: RoundResult = pipe.recv()
            measured.count += result.count
            measured.latencies += result.latencies
            measured.errors += result.errors
            measured.first_error = measured.first_error or result.first_error
            measured.connects += result.connects
            for reason, n in result.reconnects.items():
                measured.reconnects[reason] = measured.reconnects.get(reason, 0) + n
        return measured

    def nonces(self) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for pipe in self._pipes:
            pipe.send(("nonces",))
            found.update(pipe.recv())
        return found

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()


# -- databases -------------------------------------------------------------------------------
@contextlib.contextmanager
def database(choice: str, data_dir: Path) -> Iterator[tuple[str, str, str | None]]:
    """(URL for winmdm, label, PostgreSQL database name). PostgreSQL gets a throwaway database."""
    if choice == "sqlite":
        yield f"sqlite:///{data_dir / 'winmdm.db'}", "SQLite (embedded default, WAL)", None
        return
    import psycopg
    import sqlalchemy as sa

    admin = sa.make_url(choice).set(drivername="postgresql")
    name = f"winmdm_bench_{secrets.token_hex(4)}"
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name)
        label = f"PostgreSQL ({url.host}:{url.port or 5432}/{name})"
        yield url.render_as_string(hide_password=False), label, name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- one database ------------------------------------------------------------------------------
@dataclass
class Outcome:
    label: str
    hello: Measured
    checkin: Measured
    inprocess_us: float | None = None


def enroll_devices(
    server: RunningServer, issuer: EntraIssuer, count: int, folder: Path, transport_class: Any
) -> list[DeviceState]:
    """Enroll over HTTPS, then one first session each (inventory), then one idle session each."""
    states = []
    with server.client() as client:
        for _ in range(count):
            device = WindowsDevice()
            token = issuer.token(tenant_id=TENANT, audience=server.url)
            device.enroll(client, server.discovery_url, email="alice@corp.example", token=token)
            managed = ManagedDevice(device)
            with contextlib.closing(
                transport_class(server.url, tls_context(managed, server.dev_ca, folder))
            ) as transport:
                first = managed.session(transport)
                if first.header_codes[0] != StatusCode.AUTHENTICATION_ACCEPTED or not first.received:
                    raise SystemExit(f"first session was not the inventory session: {first.header_codes}")
                check_idle(managed.session(transport))
            states.append(DeviceState.of(managed))
    return states


def run_database(args: argparse.Namespace, choice: str, cpus: tuple[int | None, set[int] | None]) -> Outcome:
    server_cpu, client_cpus = cpus
    with (
        tempfile.TemporaryDirectory(prefix="winmdm-bench-") as tmp,
        EntraIssuer() as issuer,
        database(choice, Path(tmp) / "data") as (url, label, pg_name),
    ):
        env = {
            "WINMDM_DATABASE_URL": url,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": issuer.jwks_url,
            "WINMDM_LOG_LEVEL": args.log_level,
        }
        command = [*winmdm_command(), "serve"]
        if server_cpu is not None:
            command = ["taskset", "-c", str(server_cpu), *command]
        server = start_server(Path(tmp) / "data", env, command=command)
        load = None
        try:
            print(f"\n== {label} ==")
            transport_class = TRANSPORTS[args.client]
            started = time.perf_counter()
            states = enroll_devices(server, issuer, args.devices, Path(tmp) / "certs", transport_class)
            print(
                f"{len(states)} devices enrolled over HTTPS, first (inventory) session and one idle "
                f"session each: {time.perf_counter() - started:.1f} s"
            )
            spec = {"url": server.url, "ca": str(server.dev_ca), "folder": tmp, "client": args.client}
            load = Load(states, args.clients, spec, client_cpus)
            pid = server.process.pid
            for kind in ("hello", "checkin"):  # warm-up: every connection open, caches filled
                warm = load.round(kind, args.warmup, pid, server_cpu, pg_name)
                if warm.errors:
                    raise SystemExit(f"{kind} warm-up failed {warm.errors} times: {warm.first_error}")
            hello, checkin = Measured("hello"), Measured("checkin")
            slice_seconds = args.seconds / args.rounds
            for _ in range(args.rounds):
                hello.add(load.round("hello", slice_seconds, pid, server_cpu, pg_name))
                checkin.add(load.round("checkin", slice_seconds, pid, server_cpu, pg_name))
            outcome = Outcome(label, hello, checkin)
            report(outcome, args, server_cpu, pg_name is not None)
            if args.profile:
                nonces = load.nonces()
                load.close()
                load = None
                server.stop()
                states = [_with_nonce(s, nonces[s.device_id]) for s in states]
                outcome.inprocess_us = profile_inprocess(server, states, args)
            return outcome
        finally:
            if load is not None:
                load.close()
            server.stop()


def _with_nonce(state: DeviceState, nonce: bytes) -> DeviceState:
    fields = {name: getattr(state, name) for name in DeviceState.__slots__}
    return DeviceState(**{**fields, "nonce": nonce})


# -- in-process: ManagementService.handle without HTTP -------------------------------------------
class InProcess:
    """The emulator's transport, but calling `runtime.management.handle` directly.

    Only the `handle` call is timed (and profiled): building package 1 and parsing the reply are
    the device's work.
    """

    def __init__(self, runtime: Any, certificate: x509.Certificate, clock: dict[str, Any]) -> None:
        self._runtime = runtime
        self._certificate = certificate
        self._clock = clock  # {"spent": seconds in handle, "profiler": cProfile.Profile | None}
        self.connects = 0

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Reply:
        profiler = self._clock["profiler"]
        start, cpu = time.perf_counter(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        answer = self._runtime.management.handle(content, client_cert=self._certificate)
        if profiler is not None:
            profiler.disable()
        self._clock["spent"] += time.perf_counter() - start
        self._clock["cpu"] += time.thread_time() - cpu
        return Reply(200, {"content-type": SYNCML}, answer)

    def close(self) -> None:
        pass


def profile_inprocess(server: RunningServer, states: list[DeviceState], args: argparse.Namespace) -> float:
    """Time and cProfile `handle` on the same database, devices and nonces, in this process."""
    import sqlalchemy as sa

    from winmdm.config import load_config
    from winmdm.runtime import build

    runtime = build(load_config(server.env), with_tls=False)
    clock: dict[str, Any] = {"spent": 0.0, "cpu": 0.0, "profiler": None, "statements": 0, "begins": 0}

    def count_statement(*_: Any) -> None:
        clock["statements"] += 1

    def count_begin(*_: Any) -> None:
        clock["begins"] += 1

    engine = runtime.storage.engine
    sa.event.listen(engine, "before_cursor_execute", count_statement)
    sa.event.listen(engine, "begin", count_begin)
    try:
        devices = [s.managed() for s in states]
        transports = [InProcess(runtime, d.device.enrolled.certificate, clock) for d in devices]  # type: ignore[union-attr]

        def sessions(seconds: float) -> tuple[int, float]:
            count = clock["spent"] = clock["cpu"] = clock["statements"] = clock["begins"] = 0
            while clock["spent"] < seconds:
                check_idle(devices[count % len(devices)].session(transports[count % len(devices)]))
                count += 1
            return count, clock["spent"]

        sessions(min(1.0, args.seconds / 5))  # warm-up
        n, spent = sessions(args.seconds / 2)
        handle_us = 1e6 * spent / n
        print(f"\nin-process, no HTTP (same database, devices and certificates): {n} idle check-ins")
        print(f"  ManagementService.handle: {handle_us:.1f} µs each (~{1e6 / handle_us:,.0f}/s on one core)")
        print(
            f"  of which on CPU:          {1e6 * clock['cpu'] / n:.1f} µs (the rest waits: database, locks)"
        )
        print(
            f"  SQL per check-in:         {clock['statements'] / n:.1f} statements in "
            f"{clock['begins'] / n:.1f} transactions"
        )
        for name, part_us in breakdown(sessions, args.seconds / 2):
            print(f"    {name:<36} {part_us:7.1f} µs")
        clock["profiler"] = profiler = cProfile.Profile()
        n, spent = sessions(args.seconds / 2)
        print(f"\n== cProfile of handle(): {n} calls in {spent:.2f} s (profiler overhead included) ==")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
            text = out.getvalue()
            print(f"\n-- sorted by {order} --")
            print(text[text.find("   ncalls") :].rstrip())
        return handle_us
    finally:
        runtime.close()


# The parts of handle() timed one by one (no profiler: its overhead is uneven across C and
# Python code). Each is wrapped where handle() looks it up; the rest is the rules themselves,
# BEGIN/COMMIT and the glue between the parts.
_PARTS = (
    ("parse (SyncML message)", "winmdm.services.management", None, "_small_message"),
    ("database read (device state)", "winmdm.storage.sql", "SQLTransaction", "device_state"),
    ("certificate (judge)", "winmdm.services.certificates", "DeviceCertificates", "judge"),
    ("certificate serial", "winmdm.services.certificates", "DeviceCertificates", "serial"),
    ("digest check", "winmdm.services.management", None, "check_cred"),
    ("reply build", "winmdm.protocol.syncml.session", "Reply", "build"),
    ("database write (answered)", "winmdm.storage.sql_commands", "SQLSessionStore", "save_answered"),
    ("transaction (begin, commit)", "winmdm.storage.sql", "SQLStorage", "transaction"),
)


def breakdown(sessions: Any, seconds: float) -> list[tuple[str, float]]:
    """µs per check-in in each part of handle(), from a timed run with every part wrapped."""
    import importlib
    import inspect
    from contextlib import contextmanager

    spent: dict[str, float] = dict.fromkeys((part[0] for part in _PARTS), 0.0)
    originals: list[tuple[Any, str, Any]] = []

    def timed(name: str, function: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    def timed_context(name: str, function: Any) -> Any:
        @contextmanager
        def wrapper(*a: Any, **k: Any) -> Iterator[Any]:
            start = time.perf_counter()
            manager = function(*a, **k)
            value = manager.__enter__()
            spent[name] += time.perf_counter() - start
            try:
                yield value
            except BaseException as exc:
                if not manager.__exit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                start = time.perf_counter()
                manager.__exit__(None, None, None)
                spent[name] += time.perf_counter() - start

        return wrapper

    for name, module_name, class_name, attribute in _PARTS:
        module = importlib.import_module(module_name)
        owner = module if class_name is None else getattr(module, class_name)
        original = getattr(owner, attribute)
        wrap = timed_context if attribute == "transaction" else timed
        wrapped = wrap(name, original)
        if isinstance(inspect.getattr_static(owner, attribute), staticmethod):
            wrapped = staticmethod(wrapped)
        originals.append((owner, attribute, inspect.getattr_static(owner, attribute)))
        setattr(owner, attribute, wrapped)
    try:
        n, total = sessions(seconds)
    finally:
        for owner, attribute, original in originals:
            setattr(owner, attribute, original)
    parts = [(name, 1e6 * value / n) for name, value in spent.items()]
    parts.append(("the rest (rules, glue)", 1e6 * total / n - sum(v for _, v in parts)))
    print(f"  where the time goes ({n} check-ins, wrapped parts; the wrappers add ~1 µs each):")
    return parts


# -- output ------------------------------------------------------------------------------------
def report(outcome: Outcome, args: argparse.Namespace, server_cpu: int | None, postgres: bool) -> None:
    hello, checkin = outcome.hello, outcome.checkin
    for m in (hello, checkin):
        if m.errors:
            print(f"  !! {m.kind}: {m.errors} failed requests; first: {m.first_error}")
        if m.connects:
            why = ", ".join(f"{n} {reason}" for reason, n in m.reconnects.items()) or "first use"
            print(f"  note: {m.kind} opened {m.connects} new TLS connections in the timed rounds ({why})")
    ratio_cpu = checkin.per_core / hello.per_core if hello.per_core else 0.0
    ratio_wall = checkin.rate / hello.rate if hello.rate else 0.0
    rows = [
        ("", "hello", "check-in"),
        ("requests", f"{hello.count}", f"{checkin.count}"),
        ("per wall second", f"{hello.rate:,.0f}/s", f"{checkin.rate:,.0f}/s"),
        ("server CPU busy", f"{100 * hello.utilisation:.0f} %", f"{100 * checkin.utilisation:.0f} %"),
        ("per server CPU-second", f"{hello.per_core:,.0f}/s", f"{checkin.per_core:,.0f}/s"),
        (
            "server CPU per request",
            _per_request(hello, hello.server_cpu),
            _per_request(checkin, checkin.server_cpu),
        ),
        (
            "  on the event loop's thread",
            _per_request(hello, hello.loop_cpu),
            _per_request(checkin, checkin.loop_cpu),
        ),
        (
            "  on the other threads",
            _per_request(hello, hello.server_cpu - hello.loop_cpu),
            _per_request(checkin, checkin.server_cpu - checkin.loop_cpu),
        ),
        ("latency p50", f"{hello.percentile(0.5):.2f} ms", f"{checkin.percentile(0.5):.2f} ms"),
        ("latency p99", f"{hello.percentile(0.99):.2f} ms", f"{checkin.percentile(0.99):.2f} ms"),
        ("per-core rate by round", _rounds(hello), _rounds(checkin)),
        ("new connections", f"{hello.connects}", f"{checkin.connects}"),
    ]
    if postgres:
        rows.append(
            (
                "PostgreSQL backend CPU/req",
                f"{1e6 * hello.backend_cpu / max(hello.count, 1):,.0f} µs",
                f"{1e6 * checkin.backend_cpu / max(checkin.count, 1):,.0f} µs",
            )
        )
    if server_cpu is not None:
        shares = [_core_shares(m) for m in (hello, checkin)]
        for name in ("softirq (network)", "steal (hypervisor)", "other processes", "idle"):
            rows.append((f"server CPU: {name}", f"{shares[0][name]:.0f} %", f"{shares[1][name]:.0f} %"))
    for name, a, b in rows:
        print(f"  {name:<28}{a:>18}{b:>22}")
    verdict_ratio = "met" if ratio_cpu >= GOAL_RATIO else "NOT met"
    verdict_rate = "met" if checkin.per_core >= GOAL_PER_CORE else "NOT met"
    print(f"  checkins/s:  {checkin.rate:,.0f}   (per server core-second {checkin.per_core:,.0f})")
    print(f"  hello/s:     {hello.rate:,.0f}   (per server core-second {hello.per_core:,.0f})")
    print(
        f"  ratio:       {ratio_cpu:.3f} per server CPU-second, {ratio_wall:.3f} per wall second"
        f"   (goals: ratio >= {GOAL_RATIO} {verdict_ratio}; "
        f">= {GOAL_PER_CORE:,} check-ins/s per core {verdict_rate})"
    )
    if hello.utilisation < 0.9 or checkin.utilisation < 0.9:
        print(
            "  note: winmdm did not have its core to itself all the time (see the server CPU rows:"
            " other processes, softirq, idle); the per-CPU-second figures are the comparable ones"
        )


def _per_request(m: Measured, seconds: float) -> str:
    return f"{1e6 * max(seconds, 0.0) / m.count:,.0f} µs" if m.count else "-"


def _core_shares(m: Measured) -> dict[str, float]:
    """Where the server's pinned CPU went besides winmdm, in % of the wall time."""
    total = m.core.get("total", 0) or 1
    tick = os.sysconf("SC_CLK_TCK")
    softirq, steal, idle = (100 * m.core.get(k, 0) / total for k in ("softirq", "steal", "idle"))
    winmdm = 100 * m.server_cpu * tick / total
    other = max(0.0, 100 - idle - steal - softirq - winmdm)
    return {"softirq (network)": softirq, "steal (hypervisor)": steal, "other processes": other, "idle": idle}


def _rounds(m: Measured) -> str:
    return " ".join(f"{r:,.0f}" for r in m.rounds)


def summary(outcomes: list[Outcome]) -> None:
    print("\n== summary (per server core: requests / CPU-seconds of the one winmdm process) ==")
    print(f"  {'database':<34}{'checkins/s':>12}{'hello/s':>10}{'ratio':>8}{'p50 ms':>8}{'p99 ms':>8}")
    for o in outcomes:
        ratio = o.checkin.per_core / o.hello.per_core if o.hello.per_core else 0.0
        name = o.label.split(" (")[0]
        print(
            f"  {name:<34}{o.checkin.per_core:>12,.0f}{o.hello.per_core:>10,.0f}{ratio:>8.3f}"
            f"{o.checkin.percentile(0.5):>8.2f}{o.checkin.percentile(0.99):>8.2f}"
        )


def pinning(args: argparse.Namespace) -> tuple[int | None, set[int] | None, str]:
    available = sorted(os.sched_getaffinity(0))
    if args.no_pin or shutil.which("taskset") is None or len(available) < 2:
        return None, None, "nothing pinned (server and clients share all cores)"
    server = args.server_cpu if args.server_cpu is not None else available[0]
    clients = {c for c in available if c != server}
    text = (
        f"server pinned to CPU {server} (taskset -c {server}); clients and this process on CPUs "
        + ",".join(map(str, sorted(clients)))
    )
    return server, clients, text


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database",
        action="append",
        help=f"'sqlite' or a postgresql:// URL of a server where a throwaway database is made; "
        f"repeat for several (default: sqlite and {DEFAULT_POSTGRES})",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per kind and database (10)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternate hello and check-in rounds (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per kind (1)")
    parser.add_argument("--devices", type=int, default=200, help="enrolled devices (200)")
    parser.add_argument(
        "--clients", type=int, default=4, help="client processes, one request in flight each (4)"
    )
    parser.add_argument(
        "--client",
        choices=sorted(TRANSPORTS),
        default="raw",
        help="raw: a minimal keep-alive HTTP/1.1 client (default); httpx: httpx.Client",
    )
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU for the server (the first one)")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing")
    parser.add_argument(
        "--log-level", default="info", help="the server's WINMDM_LOG_LEVEL (info, as shipped)"
    )
    parser.add_argument("--profile", action="store_true", help="then time and cProfile handle() in-process")
    parser.add_argument("--top", type=int, default=30, help="rows of each cProfile table (30)")
    args = parser.parse_args(argv)
    databases = args.database or ["sqlite", DEFAULT_POSTGRES]

    server_cpu, client_cpus, pinned = pinning(args)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    print("winmdm idle check-in benchmark: real `winmdm serve` over HTTPS (uvicorn, httptools, uvloop)")
    print(f"{pinned}")
    print(
        f"{args.devices} devices, {args.clients} client processes ({args.client} client), one keep-alive TLS "
        f"connection per device with its enrollment certificate; {args.seconds:g} s per kind in "
        f"{args.rounds} alternating rounds; server log level {args.log_level}"
    )
    outcomes = [run_database(args, choice, (server_cpu, client_cpus)) for choice in databases]
    summary(outcomes)


if __name__ == "__main__":
    main()
