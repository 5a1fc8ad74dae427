"""Structure-aware fuzzing of every device endpoint, in-process (the ASGI app, no sockets).

Seeds are the shared vectors and what the device emulator really sent while enrolling PCs and
living through management sessions. Each input is a seed mutated as XML (elements dropped,
doubled, moved, renamed, re-namespaced; texts and attributes replaced with hostile values), then
sometimes as bytes (flips, cuts, DTDs, entities, stray encodings), or a GET/POST of the pages
with hostile query strings, headers and forms. SyncML inputs mostly keep a valid digest Cred of
an enrolled device, so they reach deep into its session. A fifth of the inputs go to osquery's
TLS remote API, from what the osquery emulator sent (tests/support/fuzz_osquery.py).

Every answer is checked: no 5xx but the MS-MDE2 SOAP fault (HTTP 500 with a fault body,
protocol.md decision 1), no exception out of the app, no log record with a traceback or at
ERROR; an osquery answer must also be osquery's JSON shape with the status its input calls for.
Run `scripts/fuzz --inputs 1000000` for the full campaign; tests/web/test_fuzz.py runs a short
one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import logging
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from lxml import etree
from starlette.testclient import TestClient

from tests.databases import fresh_database_url
from tests.support.device import WindowsDevice
from tests.support.entra_issuer import EntraIssuer
from tests.support.fuzz_osquery import Check, OsqueryFuzz
from tests.support.omadm import ManagedDevice
from tests.vectors import family, vector
from winmdm.config import load_config
from winmdm.protocol import digest, soap
from winmdm.runtime import Runtime, build
from winmdm.services import endpoints
from winmdm.web.app import create_app

SERVER = "https://mdm.corp.example"
TENANT = "0b9f5c3e-2a4d-4e8f-9a1b-7c6d5e4f3a2b"
SOAP_TYPE = "application/soap+xml; charset=utf-8"
SYNCML_TYPE = "application/vnd.syncml.dm+xml"
# About what one more endpoint family gets; the rest keep their shares among themselves.
OSQUERY_SHARE = 0.2

HOSTILE_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "9" * 40,
    "1e999",
    "NaN",
    "null",
    "true",
    "é€😀",
    "\u202e\u200b",
    "<>&'\"",
    "A" * 10_000,
    "ms-app://x",
    "javascript:alert(1)",
    "https://attacker.example/x",
    "eyJhbGciOiJub25lIn0.eyJ1cG4iOiJhIn0.",
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ." + "A" * 300 + ".AAAA",
    base64.b64encode(b"\x30\x82\x01\x00" + bytes(range(256))).decode(),
    "////",
    "%00%ff",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "./Vendor/MSFT/DMClient/Provider/winmdm/Unenroll",
    "com.microsoft:mdm.unenrollment.userrequest",
    "1226",
    "1222",
    "syncml:auth-md5",
    "syncml:auth-basic",
    "4294967296",
    "2147483648",
]
NAMES = [
    "SyncHdr", "SyncBody", "Status", "Results", "Alert", "Replace", "Add", "Get", "Exec", "Atomic",
    "Sequence", "Item", "Data", "Meta", "MoreData", "Cred", "Chal", "CmdID", "MsgRef", "CmdRef",
    "Envelope", "Header", "Body", "Security", "BinarySecurityToken", "RequestSecurityToken",
    "ContextItem", "Value", "Discover", "request", "GetPolicies", "Final", "Unknown",
]  # fmt: skip
NAMESPACES = [
    "",
    "SYNCML:SYNCML1.2",
    "syncml:metinf",
    "http://www.w3.org/2003/05/soap-envelope",
    "http://schemas.xmlsoap.org/soap/envelope/",
    "urn:x",
]
BYTE_TRICKS = [
    b'<!DOCTYPE x [<!ENTITY a "b">]>',
    b"&a;",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"\x00",
    b"\xff\xfe",
    b"]]>",
    b"<![CDATA[",
    b"<!--",
    b"&#0;",
    b"&#x110000;",
]


@dataclass
class Case:
    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    kind: str = ""
    tls_cert_pem: str | None = None
    # When set, the whole check of the answer (status, shape); else "no 5xx but a SOAP fault".
    expect: Check | None = None
    note: str = ""  # what was changed, when a problem needs saying


@dataclass
class Outcome:
    inputs: int = 0
    problems: list[str] = field(default_factory=list)
    by_status: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, dict[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, other: Outcome) -> None:
        self.inputs += other.inputs
        self.problems.extend(other.problems)
        for status, count in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + count
        for kind, statuses in other.by_kind.items():
            mine = self.by_kind.setdefault(kind, {})
            for status, count in statuses.items():
                mine[status] = mine.get(status, 0) + count


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()[:300]}")


class Fuzzer:
    """One in-process server (a temporary data dir; SQLite there, or `database_url`) and its seeds."""

    def __init__(self, seed: int, folder: Path, entra: EntraIssuer, database_url: str | None = None) -> None:
        self.random = random.Random(seed)
        self.entra = entra
        env = {
            "WINMDM_DATA_DIR": str(folder / "data"),
            "WINMDM_SERVER_URL": SERVER,
            "WINMDM_ENTRA_TENANT_IDS": TENANT,
            "WINMDM_ENTRA_JWKS_URL": entra.jwks_url,
        }
        if database_url is not None:
            env["WINMDM_DATABASE_URL"] = database_url
        self.runtime: Runtime = build(load_config(env), with_tls=False)
        self.app = create_app(self.runtime)
        self.soap: dict[str, list[bytes]] = {
            endpoints.DISCOVERY_PATH: [vector(n) for n in family("discovery") if "request" in n],
            endpoints.POLICY_PATH: [vector(n) for n in family("policy") if "request" in n],
            endpoints.ENROLLMENT_PATH: [vector(n) for n in family("enroll") if "request" in n],
        }
        self.syncml: list[bytes] = [vector(n) for n in family("syncml")]
        self.devices: list[ManagedDevice] = []
        self.records = _Records()
        logging.getLogger().addHandler(self.records)
        logging.getLogger().setLevel(logging.INFO)
        self.loop = asyncio.new_event_loop()
        self._enroll_devices(3)
        self.osquery = OsqueryFuzz(
            self.app,
            self.runtime,
            self.random,
            lambda: [(m.device.device_id, m.serial) for m in self.devices],
        )

    def close(self) -> None:
        logging.getLogger().removeHandler(self.records)
        self.loop.close()
        self.runtime.close()

    # -- seeds: what the emulator really sends ---------------------------------------------------
    def _enroll_devices(self, count: int) -> None:
        sent: list[tuple[str, bytes]] = []
        original_post = WindowsDevice._post
        original_session_post = ManagedDevice.post

        def record(device, client, url, body):
            sent.append((urlsplit(url).path, body))
            return original_post(device, client, url, body)

        def record_syncml(managed, client, message):
            from winmdm.protocol import syncml

            sent.append((endpoints.MANAGEMENT_PATH, syncml.build_message(message)))
            return original_session_post(managed, client, message)

        WindowsDevice._post = record  # type: ignore[method-assign]
        ManagedDevice.post = record_syncml  # type: ignore[method-assign]
        try:
            with TestClient(self.app, base_url=SERVER) as client:
                for _ in range(count):
                    device = WindowsDevice()
                    device.enroll(
                        client,
                        SERVER + endpoints.DISCOVERY_PATH,
                        email="alice@corp.example",
                        token=self.entra.token(tenant_id=TENANT, audience=SERVER),
                    )
                    managed = ManagedDevice(device)
                    managed.session(client)
                    managed.session(client)
                    self.devices.append(managed)
        finally:
            WindowsDevice._post = original_post  # type: ignore[method-assign]
            ManagedDevice.post = original_session_post  # type: ignore[method-assign]
        for path, body in sent:
            (self.syncml if path == endpoints.MANAGEMENT_PATH else self.soap.setdefault(path, [])).append(
                body
            )

    def _live_devices(self) -> list[ManagedDevice]:
        with self.runtime.storage.transaction() as tx:
            live = [d for d in self.devices if tx.enrollments.find_active_by_device_id(d.device.device_id)]
        if len(live) < 2:  # the fuzz unenrolled them: new ones keep the deep paths reachable
            self._enroll_devices(2)
            return self._live_devices()
        return live

    # -- inputs ---------------------------------------------------------------------------------
    def case(self) -> Case:
        if self.random.random() < OSQUERY_SHARE:
            return self._osquery_case()
        r = self.random.random()
        if r < 0.35:
            return self._soap_case()
        if r < 0.75:
            return self._syncml_case()
        return self._page_case()

    def _soap_case(self) -> Case:
        path = self.random.choice(list(self.soap))
        body = self._mutate_xml(self.random.choice(self.soap[path]))
        content_type = (
            SOAP_TYPE if self.random.random() < 0.95 else self.random.choice(["text/xml", "", "a/b"])
        )
        return Case("POST", path, headers=[(b"content-type", content_type.encode())], body=body, kind="soap")

    def _osquery_case(self) -> Case:
        request = self.osquery.request()
        return Case(
            "POST",
            request.path,
            headers=request.headers,
            body=request.body,
            kind="osquery",
            expect=request.check,
            note=request.note,
        )

    def _syncml_case(self) -> Case:
        devices = self._live_devices()
        managed = self.random.choice(devices)
        seed = self.random.choice(self.syncml)
        tree = _tree(seed)
        if tree is not None and self.random.random() < 0.8:
            _set_source(tree, managed.device.device_id)
            if self.random.random() < 0.8:
                self._mutate_tree(tree)
            if self.random.random() < 0.75:
                self._prove(tree, managed)
            body = etree.tostring(tree)
            if self.random.random() < 0.15:
                body = self._mutate_bytes(body)
        else:
            body = self._mutate_xml(seed)
        return Case(
            "POST",
            endpoints.MANAGEMENT_PATH,
            headers=[(b"content-type", SYNCML_TYPE.encode())],
            body=body,
            kind="syncml",
        )

    def _page_case(self) -> Case:
        pick = self.random.random()
        values = [self.random.choice(HOSTILE_TEXT) for _ in range(6)]
        if pick < 0.2:
            query = {"appru": values[0], "login_hint": values[1]}
            if self.random.random() < 0.5:
                query["token"] = values[2]
            return Case("GET", endpoints.AUTHENTICATION_PATH, query=urlencode(query).encode(), kind="page")
        if pick < 0.3:
            query = {"code": values[0], "state": values[1], "error": values[2]}
            return Case(
                "GET",
                endpoints.AUTHENTICATION_PATH + "/callback",
                query=urlencode(query).encode(),
                kind="page",
            )
        if pick < 0.55:
            query = {
                "redirect_uri": self.random.choice(["ms-appx-web://Microsoft.AAD.BrokerPlugin/x", values[0]]),
                "client-request-id": values[1],
                "api-version": self.random.choice(["1.0", values[2]]),
            }
            if self.random.random() < 0.3:
                query["mode"] = "azureadjoin"
            bearer = (
                self.entra.token(tenant_id=TENANT, audience=SERVER)
                if self.random.random() < 0.5
                else values[3]
            )
            headers = [(b"authorization", f"Bearer {bearer}".encode("utf-8", "replace"))]
            return Case(
                "GET", endpoints.TERMS_PATH, query=urlencode(query).encode(), headers=headers, kind="page"
            )
        if pick < 0.7:
            form = urlencode({"accept": values[0], "csrf": values[1], "answer": values[2]}).encode()
            headers = [(b"content-type", b"application/x-www-form-urlencoded")]
            if self.random.random() < 0.5:
                headers.append((b"cookie", f"winmdm_terms={values[3]}".encode("utf-8", "replace")))
            return Case("POST", endpoints.TERMS_PATH, headers=headers, body=form, kind="page")
        if pick < 0.8:
            query = {"code": values[0], "state": values[1]}
            return Case(
                "GET", endpoints.TERMS_PATH + "/callback", query=urlencode(query).encode(), kind="page"
            )
        if pick < 0.9:
            token = self.random.choice(HOSTILE_TEXT).replace("/", "_")[:200] or "x"
            return Case("GET", f"/agent/{token}.msi", kind="page")
        method = self.random.choice(["GET", "HEAD"])
        return Case(method, endpoints.DISCOVERY_PATH, query=urlencode({"x": values[0]}).encode(), kind="page")

    # -- mutations --------------------------------------------------------------------------------
    def _mutate_xml(self, seed: bytes) -> bytes:
        tree = _tree(seed)
        if tree is None or self.random.random() < 0.15:
            return self._mutate_bytes(seed)
        self._mutate_tree(tree)
        body = etree.tostring(tree)
        return self._mutate_bytes(body) if self.random.random() < 0.2 else body

    def _mutate_tree(self, tree: etree._Element) -> None:
        for _ in range(self.random.randint(1, 4)):
            elements = [e for e in tree.iter() if isinstance(e.tag, str)]
            target = self.random.choice(elements)
            op = self.random.randrange(9)
            parent = target.getparent()
            if op == 0 and parent is not None:
                parent.remove(target)
            elif op == 1 and parent is not None:
                parent.insert(parent.index(target), copy.deepcopy(target))
            elif op == 2:
                target.text = self.random.choice(HOSTILE_TEXT)
            elif op == 3:
                namespace = etree.QName(target).namespace or ""
                name = self.random.choice(NAMES)
                target.tag = f"{{{namespace}}}{name}" if namespace else name
            elif op == 4:
                name = etree.QName(target).localname
                namespace = self.random.choice(NAMESPACES)
                target.tag = f"{{{namespace}}}{name}" if namespace else name
            elif op == 5:
                etree.SubElement(target, self.random.choice(NAMES)).text = self.random.choice(HOSTILE_TEXT)
            elif op == 6:
                for key in list(target.attrib):
                    target.attrib[key] = self.random.choice(HOSTILE_TEXT)
            elif op == 7 and parent is not None:
                other = self.random.choice(elements)
                if other is not target and target not in other.iterancestors():
                    parent.remove(target)
                    other.append(target)
            elif op == 8:
                for _ in range(self.random.randint(1, 30)):
                    target.append(copy.deepcopy(target[0]) if len(target) else etree.Element("Item"))

    def _mutate_bytes(self, data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(self.random.randint(1, 5)):
            if not out:
                break
            at = self.random.randrange(len(out))
            op = self.random.randrange(4)
            if op == 0:
                out[at] = self.random.randrange(256)
            elif op == 1:
                del out[at : at + self.random.randint(1, 200)]
            elif op == 2:
                out[at:at] = self.random.choice(BYTE_TRICKS)
            else:
                out = out[:at]
        return bytes(out)

    def _prove(self, tree: etree._Element, managed: ManagedDevice) -> None:
        """A valid Cred over the device's current nonce, as the real device would send."""
        header = _child(tree, "SyncHdr")
        if header is None:
            return
        with self.runtime.storage.transaction() as tx:
            enrollment = tx.enrollments.find_active_by_device_id(managed.device.device_id)
        if enrollment is None:
            return
        data = digest.digest(managed.credential, base64.b64decode(enrollment.dm_nonce))
        cred = _child(header, "Cred")
        namespace = etree.QName(header).namespace or ""
        q = (lambda n: f"{{{namespace}}}{n}") if namespace else (lambda n: n)
        if cred is None:
            cred = etree.SubElement(header, q("Cred"))
        for old in list(cred):
            cred.remove(old)
        meta = etree.SubElement(cred, q("Meta"))
        etree.SubElement(meta, "{syncml:metinf}Format").text = "b64"
        etree.SubElement(meta, "{syncml:metinf}Type").text = "syncml:auth-md5"
        etree.SubElement(cred, q("Data")).text = data

    # -- running ------------------------------------------------------------------------------
    def run(self, inputs: int, outcome: Outcome, progress: Callable[[int], None] | None = None) -> None:
        started = time.monotonic()
        for n in range(inputs):
            case = self.case()
            problem = self.loop.run_until_complete(self._one(case, outcome))
            if problem is not None:
                outcome.problems.append(problem)
            if self.records.bad:
                outcome.problems.extend(f"{case.kind} {case.path}: logged {b}" for b in self.records.bad)
                self.records.bad.clear()
            outcome.inputs += 1
            if progress is not None and n % 1000 == 999:
                progress(n + 1)
        outcome.seconds += time.monotonic() - started

    async def _one(self, case: Case, outcome: Outcome) -> str | None:
        status, content_type, body = await _call(self.app, case)
        outcome.by_status[status] = outcome.by_status.get(status, 0) + 1
        kind = outcome.by_kind.setdefault(case.kind, {})
        kind[status] = kind.get(status, 0) + 1
        if status == -1:
            said, note = body.decode(errors="replace")[:300], f" ({case.note})" if case.note else ""
            return f"{case.kind} {case.method} {case.path}: exception {said}{note}"
        if case.expect is not None:
            wrong = case.expect(status, content_type, body)
            return None if wrong is None else f"{case.kind} {case.method} {case.path}: {wrong}"
        if status < 500:
            return None
        if status == 500 and content_type.startswith("application/soap+xml") and _is_fault(body):
            return None  # the MS-MDE2 SOAP fault: the protocol's own answer
        return f"{case.kind} {case.method} {case.path}: HTTP {status} {body[:200]!r}"


async def _call(app, case: Case) -> tuple[int, str, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": case.method,
        "scheme": "https",
        "path": case.path,
        "raw_path": case.path.encode("utf-8", "replace"),
        "query_string": case.query,
        "root_path": "",
        "headers": [
            (b"host", b"mdm.corp.example"),
            (b"content-length", str(len(case.body)).encode()),
            *case.headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("mdm.corp.example", 443),
        "extensions": {},
        "state": {},
    }
    pending = [{"type": "http.request", "body": case.body, "more_body": False}]

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as exc:
        return -1, "", f"{type(exc).__name__}: {exc}".encode()
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return -1, "", b"no response"
    headers = dict(start.get("headers") or [])
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers.get(b"content-type", b"").decode("latin-1"), body


def _tree(data: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(data, parser=etree.XMLParser(remove_comments=True, resolve_entities=False))
    except etree.XMLSyntaxError:
        return None


def _child(el: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name), None)


def _set_source(tree: etree._Element, device_id: str) -> None:
    header = _child(tree, "SyncHdr")
    source = _child(header, "Source") if header is not None else None
    loc = _child(source, "LocURI") if source is not None else None
    if loc is not None:
        loc.text = device_id


def _is_fault(body: bytes) -> bool:
    try:
        return soap.parse_fault(body) is not None
    except Exception:
        return False


def campaign(
    inputs: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    *,
    postgres_url: str | None = None,
) -> Outcome:
    """`inputs` cases from one seeded generator, on a fresh server: SQLite, or a new database
    on the PostgreSQL server at `postgres_url` (dropped afterwards)."""
    outcome = Outcome()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="winmdm-fuzz-")))
        entra = stack.enter_context(EntraIssuer())
        database_url = None
        if postgres_url is not None:
            database_url = stack.enter_context(
                fresh_database_url("postgresql", tmp_dir=folder, postgres_url=postgres_url)
            )
        fuzzer = Fuzzer(seed, folder, entra, database_url)
        try:
            fuzzer.run(inputs, outcome, progress)
        finally:
            fuzzer.close()
    return outcome


def _worker(args: tuple[int, int, str | None]) -> Outcome:
    inputs, seed, postgres_url = args
    return campaign(inputs, seed, postgres_url=postgres_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz every device endpoint of winmdm in-process.")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs in all (default 1000000)")
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count()))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=20_000, help="inputs per batch (a fresh server each)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server URL: each batch runs on a new database there (default: SQLite)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("winmdm").setLevel(logging.INFO)
    batches = [
        (min(args.batch, args.inputs - start), args.seed * 1_000_003 + n, args.postgres)
        for n, start in enumerate(range(0, args.inputs, args.batch))
    ]
    total = Outcome()
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for done in pool.imap_unordered(_worker, batches):
            total.add(done)
            elapsed = time.monotonic() - started
            print(
                f"{total.inputs:>9} inputs  {total.inputs / elapsed:8.0f}/s  problems {len(total.problems)}",
                file=sys.stderr,
                flush=True,
            )
    elapsed = time.monotonic() - started
    print(f"inputs: {total.inputs}  seconds: {elapsed:.0f}  rate: {total.inputs / elapsed:.0f}/s")
    print("answers by HTTP status: " + ", ".join(f"{k}: {v}" for k, v in sorted(total.by_status.items())))
    for kind, statuses in sorted(total.by_kind.items()):
        print(f"  {kind}: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print(f"problems: {len(total.problems)}")
    for problem in sorted(set(total.problems))[:50]:
        print("  " + problem)
    return 1 if total.problems else 0


if __name__ == "__main__":
    sys.exit(main())
