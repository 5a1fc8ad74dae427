"""Full Windows enrollments per second in one process, beside the raw certificate-signing rate.

    python benchmarks/enroll.py [--seconds N] [--database sqlite|postgresql://...] [--profile]

An enrollment is the three SOAP messages a Windows PC sends (Discover, GetPolicies,
RequestSecurityToken), each parsed with `soap.parse_envelope` and answered by
`enrollment_routes._answer`: what the HTTP handler does, minus the socket and the thread hop.
The server is a real runtime (`winmdm.runtime.build`): migrated database, device CA, Entra token
verification against a JWKS served over loopback HTTP by the test issuer, and an INFO log line
per enrollment written to a file, as `winmdm serve` logs.

What the device pays for is made outside the timed region: RSA keys, CSRs (each signed by the
device key), Entra tokens and the request bytes. Device keys come from a small pool (RSA key
generation takes ~0.1 s each; the server cannot tell, since nothing it does depends on the key
being new), while the device id, CSR and token are fresh for every enrollment.

The raw rate is `cryptography` building and signing the certificate the device CA issues (same
extensions as `DeviceCA.issue_client_certificate`, with the device CA's own key) in a loop. The
ratio enrollments/s / raw signs/s says how much of the server's time is the unavoidable signature.
The two are measured in alternating rounds, so other load on the machine hits both alike.
A second, instrumented run splits an enrollment's time into phases (timers around the pieces;
the headline run has none).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import functools
import io
import logging
import pstats
import secrets
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support.entra_issuer: the loopback Entra stand-in

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

import winmdm.services.enrollment as enrollment_module  # noqa: E402
from tests.support.entra_issuer import EntraIssuer  # noqa: E402
from winmdm.config import load_config  # noqa: E402
from winmdm.protocol import discovery, provisioning, soap, wstep, xcep  # noqa: E402
from winmdm.protocol import namespaces as ns  # noqa: E402
from winmdm.runtime import Runtime, build  # noqa: E402
from winmdm.web.enrollment_routes import _answer  # noqa: E402

TENANT = "8d1d5a3c-6f7e-4b1a-9c2d-3e4f5a6b7c8d"
SERVER_URL = "https://mdm.bench.example"
DEVICE_KEY_POOL = 32
BATCH = 200  # enrollments prepared per pause of the clock


# -- what the devices send ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceMessages:
    device_id: str
    discover: bytes
    get_policies: bytes
    rst: bytes


class Devices:
    """Makes the request bytes of many Windows PCs, each with its own id, CSR and token."""

    def __init__(self, issuer: EntraIssuer, runtime: Runtime) -> None:
        self._issuer = issuer
        self._endpoints = runtime.endpoints
        self._keys = [
            rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(DEVICE_KEY_POOL)
        ]
        self._n = 0

    def batch(self, count: int) -> list[DeviceMessages]:
        return [self.one() for _ in range(count)]

    def one(self) -> DeviceMessages:
        self._n += 1
        device_id = secrets.token_hex(16).upper()
        hw_dev_id = secrets.token_hex(32).upper()
        key = self._keys[self._n % len(self._keys)]
        token = self._issuer.token(tenant_id=TENANT, audience=SERVER_URL, device_id=str(uuid.uuid4()))
        security = soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, token.encode()),))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{uuid.uuid4()!s:.30}!{device_id}")])
            )
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        endpoints = self._endpoints
        return DeviceMessages(
            device_id=device_id,
            discover=discovery.build_discover_request(
                email="alice@corp.example",
                request_version="5.0",
                message_id=_message_id(),
                to=endpoints.discovery,
            ),
            get_policies=xcep.build_get_policies_request(
                message_id=_message_id(), to=endpoints.policy, security=security
            ),
            rst=wstep.build_rst(
                message_id=_message_id(),
                to=endpoints.enrollment,
                security=security,
                request=csr,
                context=_context(device_id, hw_dev_id),
            ),
        )


def _message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _context(device_id: str, hw_dev_id: str) -> list[tuple[str, str]]:
    """The ContextItems Windows 10 22H2 sends (tests/support/device.py, the shared vectors)."""
    return [
        ("UXInitiated", "true"),
        ("HWDevID", hw_dev_id),
        ("Locale", "en-US"),
        ("TargetedUserLoggedIn", "true"),
        ("OSEdition", "48"),
        ("DeviceName", "DESKTOP-0C89RC0"),
        ("MAC", "00-0C-29-7B-4E-4C"),
        ("DeviceID", device_id),
        ("EnrollmentType", "Full"),
        ("DeviceType", "CIMClient_Windows"),
        ("OSVersion", "10.0.19045.2965"),
        ("ApplicationVersion", "10.0.19045.2965"),
        ("NotInOobe", "true"),
        ("RequestVersion", "5.0"),
    ]


# -- the server side ---------------------------------------------------------------------------
def enroll(runtime: Runtime, messages: DeviceMessages) -> bytes:
    """One enrollment, as the HTTP handler runs it; the RSTR bytes."""
    answer = b""
    for body in (messages.discover, messages.get_policies, messages.rst):
        envelope = soap.parse_envelope(body, max_bytes=runtime.config.max_body_bytes)
        answer = _answer(runtime, envelope, str(uuid.uuid4()))
    return answer


def check_answer(answer: bytes, device_id: str) -> None:
    """The answer must be an RSTR carrying a provisioning document with the device's certificate."""
    fault = soap.parse_fault(answer)
    if fault is not None:
        raise SystemExit(f"enrollment refused: {fault.subcode}: {fault.reason}")
    document = provisioning.parse_document(wstep.parse_rstr(answer))
    store = document.find("CertificateStore", "My", "User")
    if store is None or document.find("APPLICATION") is None:
        raise SystemExit("the provisioning document has no My/User store or no w7 APPLICATION")
    node = next(c for c in store.children if c.type != "PrivateKeyContainer")
    cert = x509.load_der_x509_certificate(base64.b64decode(node.value("EncodedCertificate") or ""))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    if cn != device_id:
        raise SystemExit(f"issued certificate names {cn!r}, expected {device_id!r}")


def run_enrollments(
    runtime: Runtime, devices: Devices, seconds: float, between: Callable[[], None] | None = None
) -> tuple[int, float]:
    """Enroll fresh devices until `seconds` of enrollment time has passed; (count, seconds).

    The clock only runs while the server works: preparing the next batch pauses it.
    """
    count, spent = 0, 0.0
    while spent < seconds:
        batch = devices.batch(BATCH)
        if between is not None:
            between()
        start = time.perf_counter()
        for messages in batch:
            enroll(runtime, messages)
            count += 1
            # A clock read per enrollment (~0.1 µs) keeps the run close to `seconds`.
            if time.perf_counter() - start + spent >= seconds:
                break
        spent += time.perf_counter() - start
    return count, spent


# -- raw signing -------------------------------------------------------------------------------
def raw_signs(runtime: Runtime, devices: Devices, seconds: float) -> tuple[int, float]:
    """`cryptography` issuing the device CA's client certificate, nothing else."""
    ca_cert, ca_key = runtime.ca.certificate, runtime.ca.private_key
    issuer_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    public_keys = [k.public_key() for k in devices._keys]
    lifetime, backdate = timedelta(days=runtime.config.certificate_days), timedelta(minutes=5)
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        public_key = public_keys[count % len(public_keys)]
        now = datetime.now(UTC)
        (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(16))]))
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(secrets.randbits(159) | 1)
            .not_valid_before(now - backdate)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        count += 1
        if time.perf_counter() >= deadline:
            break
    return count, time.perf_counter() - start


# -- the breakdown -----------------------------------------------------------------------------
class PhaseTimer:
    """Exclusive time per phase: a nested phase's time is taken out of the phase around it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [name, start, time of children]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - frame[1]
            self._stack.pop()
            self.totals[name] += elapsed - frame[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)

        return timed


class _TimedStorage:
    def __init__(self, storage: Any, timer: PhaseTimer) -> None:
        self._storage, self._timer = storage, timer

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        phase = "database transaction (host, enrollment, certificate rows)"
        with self._timer.phase(phase), self._storage.transaction() as tx:
            yield tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@contextlib.contextmanager
def instrumented(runtime: Runtime, timer: PhaseTimer) -> Iterator[None]:
    """Timers around the pieces of an enrollment, by swapping attributes for the run's duration."""
    service = runtime.enrollment
    patches: list[tuple[Any, str, Any]] = [
        (soap, "parse_envelope", timer.wrap("SOAP parse (3 messages)", soap.parse_envelope)),
        (
            service._ca,
            "issue_client_certificate",
            timer.wrap("certificate signing (CA, RSA sign)", service._ca.issue_client_certificate),
        ),
        (
            service._auth,
            "authenticate",
            timer.wrap("Entra token verification (x2)", service._auth.authenticate),
        ),
        (
            enrollment_module,
            "parse_csr",
            timer.wrap("CSR parse + signature check", enrollment_module.parse_csr),
        ),
        (
            enrollment_module,
            "build_enrollment_document",
            timer.wrap("provisioning document build", enrollment_module.build_enrollment_document),
        ),
        (service, "_record", timer.wrap("certificate record (DER, thumbprint)", service._record)),
        (wstep, "build_rstr", timer.wrap("RSTR build", wstep.build_rstr)),
        (wstep, "parse_rst", timer.wrap("RST parse", wstep.parse_rst)),
        (
            discovery,
            "build_discover_response",
            timer.wrap("Discover answer", discovery.build_discover_response),
        ),
        (
            xcep,
            "build_get_policies_response",
            timer.wrap("GetPolicies answer", xcep.build_get_policies_response),
        ),
        (service, "_storage", _TimedStorage(service._storage, timer)),
    ]
    saved = []
    for owner, name, replacement in patches:
        saved.append((owner, name, vars(owner).get(name, _MISSING)))
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


_MISSING = object()


def breakdown(runtime: Runtime, devices: Devices, seconds: float) -> tuple[int, float, dict[str, float]]:
    timer = PhaseTimer()
    with instrumented(runtime, timer):
        count, spent = 0, 0.0
        while spent < seconds:
            batch = devices.batch(BATCH)
            start = time.perf_counter()
            for messages in batch:
                with timer.phase("everything else (dispatch, ids, logging, ...)"):
                    enroll(runtime, messages)
                count += 1
                if time.perf_counter() - start + spent >= seconds:
                    break
            spent += time.perf_counter() - start
    return count, spent, dict(timer.totals)


def profile(runtime: Runtime, devices: Devices, seconds: float, top: int) -> None:
    profiler = cProfile.Profile()
    count, spent = 0, 0.0
    while spent < seconds:
        batch = devices.batch(BATCH)
        start = time.perf_counter()
        profiler.enable()
        for messages in batch:
            enroll(runtime, messages)
            count += 1
            if time.perf_counter() - start + spent >= seconds:
                break
        profiler.disable()
        spent += time.perf_counter() - start
    print(f"\n== cProfile: {count} enrollments in {spent:.1f} s (profiler overhead included) ==")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        text = out.getvalue()
        print(f"\n-- sorted by {order} --")
        print(text[text.find("   ncalls") :].rstrip())


# -- databases ---------------------------------------------------------------------------------
@contextlib.contextmanager
def database(choice: str, data_dir: Path) -> Iterator[tuple[str, str]]:
    """(URL for winmdm, label). A PostgreSQL server gets a throwaway database, dropped after."""
    if choice == "sqlite":
        yield f"sqlite:///{data_dir / 'winmdm.db'}", "SQLite (embedded default, WAL)"
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
        yield url.render_as_string(hide_password=False), f"PostgreSQL ({url.host}:{url.port or 5432}/{name})"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement (10)")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (default) or a postgresql:// URL of a server where a throwaway database is made",
    )
    parser.add_argument(
        "--breakdown-seconds",
        type=float,
        default=None,
        help="instrumented run (default: --seconds / 2; 0 skips)",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternate raw signing and enrolling this many times (5)"
    )
    parser.add_argument("--profile", action="store_true", help="also run under cProfile and print hot spots")
    parser.add_argument("--top", type=int, default=30, help="rows of each cProfile table (30)")
    args = parser.parse_args(argv)
    breakdown_seconds = args.seconds / 2 if args.breakdown_seconds is None else args.breakdown_seconds

    with (
        tempfile.TemporaryDirectory(prefix="winmdm-bench-") as tmp,
        EntraIssuer() as issuer,
        database(args.database, Path(tmp) / "data") as (url, label),
    ):
        config = load_config(
            {
                "WINMDM_DATA_DIR": str(Path(tmp) / "data"),
                "WINMDM_DATABASE_URL": url,
                "WINMDM_SERVER_URL": SERVER_URL,
                "WINMDM_ENTRA_TENANT_IDS": TENANT,
                "WINMDM_ENTRA_JWKS_URL": issuer.jwks_url,
            }
        )
        runtime = build(config, with_tls=False)
        # Log as `winmdm serve` does (one INFO line per enrollment), to a file instead of stderr.
        handler = logging.FileHandler(Path(tmp) / "winmdm.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(config.log_level.upper())
        try:
            devices = Devices(issuer, runtime)
            ca_bits = runtime.ca.private_key.key_size
            print(f"winmdm enrollment benchmark: one process, {label}")
            print(f"device CA key: RSA {ca_bits}; device keys: RSA 2048 (pool of {DEVICE_KEY_POOL})")
            print(
                "device-side work (key generation, CSR signing, Entra token minting, request XML) "
                "is done before timing: it is the device's and Entra's cost, not the server's"
            )

            first = devices.one()
            check_answer(enroll(runtime, first), first.device_id)
            print("first enrollment checked: RSTR with a provisioning document and the device's certificate")
            run_enrollments(runtime, devices, min(1.0, args.seconds / 5))  # warm-up

            # Interleaved rounds: load from other processes on the machine hits both rates alike.
            signs = count = 0
            sign_time = spent = 0.0
            ratios = []
            for _ in range(args.rounds):
                s, st = raw_signs(runtime, devices, args.seconds / args.rounds)
                c, sp = run_enrollments(runtime, devices, args.seconds / args.rounds)
                signs, sign_time, count, spent = signs + s, sign_time + st, count + c, spent + sp
                ratios.append((c / sp) / (s / st))
            raw_rate = signs / sign_time
            rate = count / spent
            print()
            print(f"enrollments:     {count} in {spent:.2f} s")
            print(f"enrollments/s:   {rate:.1f}")
            print(f"raw signs/s:     {raw_rate:.1f}   ({signs} certificates in {sign_time:.2f} s)")
            print(f"ratio:           {rate / raw_rate:.2f}   (goal >= 0.5)")
            if len(ratios) > 1:
                print(f"ratio by round:  {' '.join(f'{r:.2f}' for r in ratios)}")
            print(f"per enrollment:  {1000 / rate:.3f} ms  (raw sign {1000 / raw_rate:.3f} ms)")

            if breakdown_seconds > 0:
                n, t, totals = breakdown(runtime, devices, breakdown_seconds)
                each = 1000 * t / n
                print(f"\nbreakdown (instrumented run, {n} enrollments in {t:.2f} s, {each:.3f} ms each):")
                measured = sum(totals.values())
                for name, total in sorted(totals.items(), key=lambda kv: -kv[1]):
                    per = 1000 * total / n
                    print(f"  {name:<58} {per:7.3f} ms  {100 * total / measured:5.1f} %")
            if args.profile:
                profile(runtime, devices, args.seconds, args.top)
        finally:
            runtime.close()
            logging.getLogger().removeHandler(handler)
            handler.close()


if __name__ == "__main__":
    main()
