"""Hostile and broken bodies on the device endpoints (issue 3 items 6 and 7, design.md §3).

Hostile XML (DTDs, entities, depth, size) is refused unread with an s:MessageFormat fault; the
request's MessageID cannot be read from such a body, so those faults carry no RelatesTo. Bodies
that are not SOAP at all get a 4xx with a plain-text message. Nothing hangs, nothing leaks a
stack trace, and the same app instance still enrolls a good device at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.support.device import WindowsDevice
from tests.web.conftest import (
    DISCOVERY,
    ENROLLMENT,
    POLICY,
    SERVER_URL,
    SOAP_CONTENT_TYPE,
    Answer,
    discover_body,
    message_id,
    post,
)
from winmdm.protocol import namespaces as ns
from winmdm.protocol import soap, xml

VECTORS = Path("/work/shared/vectors")
SOAP_PATHS = [DISCOVERY, POLICY, ENROLLMENT]
DEFAULT_ACTION = {
    DISCOVERY: ns.ACTION_DISCOVER_RESPONSE,
    POLICY: ns.ACTION_GET_POLICIES_RESPONSE,
    ENROLLMENT: ns.ACTION_RSTRC,
}
LIMIT = 1024 * 1024  # WINMDM_MAX_BODY_BYTES default
FIVE_MB = 5 * 1024 * 1024
PASSWD_MARKERS = ("root:x:", "root:*:", "/bin/sh", "/usr/sbin/nologin")


def within(seconds: float, call: Callable[[], Answer]) -> Answer:
    """Run `call` and fail (instead of hanging the suite) when it takes longer than `seconds`."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"the server did not answer within {seconds} s")
    finally:
        pool.shutdown(wait=False)


def envelope(body: str, *, head: str = "", mid: str = "urn:uuid:hostile") -> bytes:
    """A SOAP 1.2 Discover envelope around `body`, preceded by `head` (prolog, DTD)."""
    return (
        f"<?xml version='1.0' encoding='utf-8'?>{head}"
        f'<s:Envelope xmlns:s="{ns.SOAP12}" xmlns:a="{ns.ADDRESSING}">'
        f"<s:Header><a:Action>{ns.ACTION_DISCOVER}</a:Action><a:MessageID>{mid}</a:MessageID>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def discover(email: str) -> str:
    return (
        f'<Discover xmlns="{ns.DISCOVERY}"><request><EmailAddress>{email}</EmailAddress>'
        "<RequestVersion>5.0</RequestVersion></request></Discover>"
    )


def assert_refused_unread(answer: Answer, path: str = DISCOVERY) -> None:
    answer.assert_fault("s:MessageFormat", relates_to=None, action=DEFAULT_ACTION[path])
    text = answer.response.text
    for marker in PASSWD_MARKERS:
        assert marker not in text
    assert "lol" not in text


@pytest.fixture
def black_hole() -> Iterator[tuple[str, socket.socket]]:
    """A loopback port that accepts TCP connections into its backlog and never answers.

    A parser that fetched an external DTD from it would hang; a connection in the backlog
    afterwards would prove it tried.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/evil.dtd", sock
    finally:
        sock.close()


def assert_never_contacted(sock: socket.socket) -> None:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail("the server connected to the external DTD's host")


# -- entities and DTDs ---------------------------------------------------------------------------


def test_xxe_file_entity_is_refused_and_never_read(client: TestClient) -> None:
    head = '<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    answer = within(10, lambda: post(client, DISCOVERY, envelope(discover("&xxe;"), head=head)))
    assert_refused_unread(answer)


def test_xxe_in_utf16_is_refused_and_never_read(client: TestClient) -> None:
    """UTF-16 hides `<!DOCTYPE` from a byte scan; the parser itself must still refuse it."""
    head = '<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    text = envelope(discover("&xxe;"), head=head).decode().replace("utf-8", "utf-16")
    answer = within(10, lambda: post(client, DISCOVERY, text.encode("utf-16")))
    assert_refused_unread(answer)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("path", SOAP_PATHS)
def test_billion_laughs_is_refused_quickly(client: TestClient, path: str, encoding: str) -> None:
    names = ["lol", *(f"lol{i}" for i in range(1, 10))]
    entities = [f'<!ENTITY {name} "{f"&{prev};" * 10}">' for prev, name in itertools.pairwise(names)]
    head = '<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(entities) + "]>"
    started = time.monotonic()
    text = envelope(discover("&lol9;"), head=head).decode().replace("utf-8", encoding)
    answer = within(10, lambda: post(client, path, text.encode(encoding)))
    assert time.monotonic() - started < 5
    assert_refused_unread(answer, path)


def test_external_dtd_is_never_fetched(client: TestClient, black_hole) -> None:
    url, sock = black_hole
    head = f'<!DOCTYPE s:Envelope SYSTEM "{url}">'
    answer = within(10, lambda: post(client, DISCOVERY, envelope(discover("a@b.example"), head=head)))
    assert_refused_unread(answer)
    assert_never_contacted(sock)


def test_external_dtd_after_a_long_prolog_is_never_fetched(client: TestClient, black_hole) -> None:
    """A DOCTYPE pushed past the first 4 KiB by a comment: the parser's own check must hold."""
    url, sock = black_hole
    head = "<!--" + "x" * 8192 + f'-->\n<!DOCTYPE s:Envelope SYSTEM "{url}">'
    answer = within(10, lambda: post(client, DISCOVERY, envelope(discover("a@b.example"), head=head)))
    assert_refused_unread(answer)
    assert_never_contacted(sock)


def test_external_parameter_entity_is_never_fetched(client: TestClient, black_hole) -> None:
    url, sock = black_hole
    head = f'<!DOCTYPE s:Envelope [<!ENTITY % remote SYSTEM "{url}"> %remote;]>'
    answer = within(10, lambda: post(client, DISCOVERY, envelope(discover("a@b.example"), head=head)))
    assert_refused_unread(answer)
    assert_never_contacted(sock)


# -- size and depth ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SOAP_PATHS)
def test_5mb_body_with_content_length_is_refused(client: TestClient, path: str) -> None:
    body = envelope(discover("a@b.example" + " " * FIVE_MB))
    assert len(body) > FIVE_MB
    answer = within(30, lambda: post(client, path, body))
    assert answer.response.request.headers["content-length"] == str(len(body))
    assert_refused_unread(answer, path)


CHUNK = 64 * 1024


def chunked_5mb() -> Iterator[bytes]:
    """A SOAP envelope whose Body is a 5 MB comment, in 64 KiB chunks."""
    head = envelope("").split(b"<s:Body>")[0] + b"<s:Body><!--"
    yield head
    for _ in range(FIVE_MB // CHUNK):
        yield b"x" * CHUNK
    yield b"--></s:Body></s:Envelope>"


def test_5mb_chunked_body_is_refused(client: TestClient) -> None:
    """No Content-Length, Transfer-Encoding: chunked: the limit still holds."""
    answer = within(30, lambda: post(client, DISCOVERY, chunked_5mb()))
    assert "content-length" not in answer.response.request.headers
    assert answer.response.request.headers["transfer-encoding"] == "chunked"
    assert_refused_unread(answer)


def test_5mb_chunked_body_is_read_only_up_to_the_limit(client: TestClient) -> None:
    """At the ASGI boundary (TestClient buffers request bodies): the app stops pulling chunks
    once the limit is passed, answers, and never asks for the rest."""
    chunks = chunked_5mb()
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": DISCOVERY,
        "raw_path": DISCOVERY.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"mdm.test:8443"),
            (b"content-type", b"application/soap+xml; charset=utf-8"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("mdm.test", 8443),
    }
    asyncio.run(asyncio.wait_for(client.app(scope, receive, send), timeout=30))
    assert pulled <= LIMIT + 2 * CHUNK, f"the server read {pulled} bytes of a {FIVE_MB}-byte body"
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 500
    assert headers["content-type"] == SOAP_CONTENT_TYPE
    assert headers["content-length"] == str(len(body))
    fault = soap.parse_fault(body)
    assert fault is not None and fault.subcode == "s:MessageFormat" and fault.relates_to is None


@pytest.mark.parametrize("depth", [100, 10_000])
def test_deep_nesting_is_refused(client: TestClient, depth: int) -> None:
    nested = "<x>" * depth + "</x>" * depth
    answer = within(10, lambda: post(client, DISCOVERY, envelope(nested)))
    assert_refused_unread(answer)


# -- not SOAP at all: 4xx with a message -----------------------------------------------------------


def _garbage() -> bytes:
    return random.Random(3).randbytes(4096)


NOT_SOAP = {
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "truncated": envelope(discover("a@b.example"))[:-60],
    "garbage": _garbage(),
    "invalid-utf8": envelope(discover("a@@@b.example")).replace(b"@@@", b"\xff\xfe\xc3\x28"),
    "json": b'{"Envelope": {"Body": "Discover"}}',
    "not-an-envelope": b"<html><body>hello</body></html>",
}


@pytest.mark.parametrize("path", SOAP_PATHS)
@pytest.mark.parametrize("name", sorted(NOT_SOAP))
def test_body_that_is_not_soap_gets_400(client: TestClient, path: str, name: str) -> None:
    answer = within(10, lambda: post(client, path, NOT_SOAP[name]))
    answer.assert_plain(400)


@pytest.mark.parametrize("path", SOAP_PATHS)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_method_gets_405(client: TestClient, path: str, method: str) -> None:
    answer = Answer(client.request(method, path, content=discover_body(message_id())))
    answer.assert_plain(405)


@pytest.mark.parametrize("path", [POLICY, ENROLLMENT])
def test_get_on_policy_and_enrollment_gets_405(client: TestClient, path: str) -> None:
    Answer(client.get(path)).assert_plain(405)


@pytest.mark.parametrize("path", SOAP_PATHS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "multipart/form-data; boundary=x", None]
)
def test_wrong_content_type_gets_415(client: TestClient, path: str, content_type: str | None) -> None:
    headers = {"User-Agent": "ENROLLClient"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(path, content=discover_body(message_id()), headers=headers)
    if content_type is None:
        assert "content-type" not in response.request.headers
    Answer(response).assert_plain(415)


# -- the Windows probe ---------------------------------------------------------------------------


def _probe_vector() -> tuple[int, dict[str, str]]:
    lines = (VECTORS / "discovery" / "discover_get_probe.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("HTTP/1.1 "))
    status = int(lines[start].split()[1])
    headers = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_discovery_probe_answers_like_the_vector(client: TestClient, method: str) -> None:
    status, headers = _probe_vector()
    assert (status, headers["content-type"], headers["content-length"]) == (200, "text/html", "0")
    response = client.request(
        method, DISCOVERY, headers={"User-Agent": "Windows Phone 8 Enrollment Client", "Pragma": "no-cache"}
    )
    assert response.status_code == status
    assert response.headers["content-type"].split(";")[0] == headers["content-type"]
    assert response.headers["content-length"] == headers["content-length"]
    assert response.content == b""


# -- SOAP 1.1 ------------------------------------------------------------------------------------


def _as_soap11(body: bytes) -> bytes:
    return body.replace(ns.SOAP12.encode(), ns.SOAP11.encode())


def test_soap11_discover_is_answered_in_soap11(client: TestClient) -> None:
    mid = message_id()
    answer = post(client, DISCOVERY, _as_soap11(discover_body(mid)))
    answer.assert_no_trace()
    assert answer.response.status_code == 200, answer.response.text
    root = xml.parse(answer.response.content)
    assert (xml.local(root), xml.namespace(root)) == ("Envelope", ns.SOAP11)
    assert xml.text(xml.path(root, "Header", "RelatesTo")) == mid
    assert xml.path(root, "Body", "DiscoverResponse", "DiscoverResult") is not None


def test_soap11_fault_is_answered_in_soap11(client: TestClient) -> None:
    mid = message_id()
    body = _as_soap11(discover_body(mid)).replace(b"/Discover<", b"/Unheard<")
    answer = post(client, DISCOVERY, body)
    answer.assert_fault("s:MessageFormat", relates_to=mid, action=ns.ACTION_DISCOVER_RESPONSE)
    root = xml.parse(answer.response.content)
    assert xml.namespace(root) == ns.SOAP11
    assert xml.namespace(xml.path(root, "Body", "Fault")) == ns.SOAP11


# -- after all that ------------------------------------------------------------------------------


def test_a_good_device_still_enrolls_after_the_abuse(client: TestClient, token) -> None:
    """Same app instance as every test above; a last burst of abuse first, in case run alone."""
    head = '<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    assert_refused_unread(post(client, DISCOVERY, envelope(discover("&xxe;"), head=head)))
    assert_refused_unread(post(client, ENROLLMENT, envelope("<x>" * 10_000)), ENROLLMENT)
    post(client, POLICY, b"\x00\xff garbage").assert_plain(400)

    device = WindowsDevice()
    enrolled = device.enroll(client, SERVER_URL + DISCOVERY, email="alice@corp.example", token=token())
    assert enrolled.management_url.startswith(SERVER_URL + "/")
    assert enrolled.enrollment_url.startswith(SERVER_URL + "/")
    health = client.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
