"""The device certificate reaches the app: a real uvicorn over TLS on loopback, both HTTP
implementations, and the trusted-proxy header path."""

from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from winmdm.pki.ca import DeviceCA, write_certificate, write_private_key
from winmdm.pki.tls import ensure_dev_tls
from winmdm.web.client_cert import parse_certificate_header, peer_certificate
from winmdm.web.connections import GuardedH11Protocol, GuardedHttpToolsProtocol, guarded_protocol

NOW = datetime(2026, 3, 1, tzinfo=UTC)
HEADER = "X-SSL-Client-Cert"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
ELSEWHERE = [ipaddress.ip_network("10.0.0.0/8")]


@dataclass(frozen=True)
class Identity:
    cert: x509.Certificate
    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class PKI:
    device_ca: DeviceCA
    device_ca_path: Path
    server_ca_path: Path
    server_cert_path: Path
    server_key_path: Path
    device: Identity
    stranger: Identity  # issued by a CA the server does not trust


def _identity(ca: DeviceCA, directory: Path, name: str, serial: int) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_client_certificate(key.public_key(), common_name=name, serial=serial, now=NOW)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    write_certificate(cert_path, cert)
    write_private_key(key_path, key)
    return Identity(cert, cert_path, key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("client-cert-pki")
    dev_tls = ensure_dev_tls(directory / "tls", "localhost", now=NOW)
    device_ca = DeviceCA.generate("winmdm test device CA", NOW)
    device_ca_path = directory / "device-ca.crt"
    write_certificate(device_ca_path, device_ca.certificate)
    other_ca = DeviceCA.generate("somebody else's CA", NOW)
    return PKI(
        device_ca=device_ca,
        device_ca_path=device_ca_path,
        server_ca_path=dev_tls.ca_cert_path,
        server_cert_path=dev_tls.cert_path,
        server_key_path=dev_tls.key_path,
        device=_identity(device_ca, directory, "device-7", 0x1234ABCD),
        stranger=_identity(other_ca, directory, "stranger", 0x5678),
    )


def _describe(request: Request, trusted: list) -> JSONResponse:
    cert = peer_certificate(request.scope, trusted_proxies=trusted, header_name=HEADER)
    tls = request.scope.get("extensions", {}).get("tls")
    return JSONResponse(
        {
            "subject": cert.subject.rfc4514_string() if cert else None,
            "serial": cert.serial_number if cert else None,
            "client_port": request.scope["client"][1],
            "tls": {k: v for k, v in tls.items() if k != "client_cert_chain"} if tls else None,
        }
    )


async def _via_trusted_proxy(request: Request) -> JSONResponse:
    return _describe(request, LOOPBACK)


async def _direct_only(request: Request) -> JSONResponse:
    return _describe(request, ELSEWHERE)


METHODS = ["GET", "POST"]
APP = Starlette(
    routes=[
        Route("/peer", _via_trusted_proxy, methods=METHODS),
        Route("/direct", _direct_only, methods=METHODS),
    ]
)


@dataclass
class Server:
    url: str
    calls: list[str]


def _run_server(pki: PKI, http: type, loop: str) -> Iterator[Server]:
    calls: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            calls.append(scope["path"])
        await APP(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=http,
        loop=loop,
        lifespan="off",
        log_level="warning",
        ssl_certfile=str(pki.server_cert_path),
        ssl_keyfile=str(pki.server_key_path),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ca_certs=str(pki.device_ca_path),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Server(f"https://localhost:{port}", calls)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(
    scope="module",
    params=[
        (GuardedHttpToolsProtocol, "uvloop"),
        (GuardedH11Protocol, "asyncio"),
        (GuardedH11Protocol, "uvloop"),
    ],
    ids=["httptools-uvloop", "h11-asyncio", "h11-uvloop"],
)
def server(request: pytest.FixtureRequest, pki: PKI) -> Iterator[Server]:
    http, loop = request.param
    yield from _run_server(pki, http, loop)


def _client(
    pki: PKI, identity: Identity | None = None, *, max_version: ssl.TLSVersion | None = None
) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.server_ca_path))
    if max_version is not None:
        context.maximum_version = max_version
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    return httpx.Client(verify=context, timeout=10)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _nginx_escaped(cert: x509.Certificate) -> str:
    """What nginx's $ssl_client_escaped_cert sends: the PEM, URL-encoded."""
    return urllib.parse.quote(_pem(cert), safe="")


# A real server over TLS


def test_the_app_sees_the_presented_client_certificate(server: Server, pki: PKI) -> None:
    with _client(pki, pki.device) as client:
        body = client.get(f"{server.url}/direct").json()
    assert body["subject"] == "CN=device-7"
    assert body["serial"] == 0x1234ABCD
    tls = body["tls"]
    assert tls["client_cert_name"] == "CN=device-7"
    assert tls["client_cert_error"] is None and tls["server_cert"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] <= 0xFFFF


def test_the_extension_carries_the_leaf_as_pem(server: Server, pki: PKI) -> None:
    seen: list[dict] = []

    async def capture(request: Request) -> JSONResponse:
        seen.append(request.scope["extensions"]["tls"])
        return JSONResponse({})

    APP.router.routes.append(Route("/capture", capture))
    try:
        with _client(pki, pki.device) as client:
            client.get(f"{server.url}/capture").raise_for_status()
    finally:
        APP.router.routes.pop()
    (tls,) = seen
    assert tls["client_cert_chain"] == [_pem(pki.device.cert)]


def test_without_a_client_certificate_the_app_sees_none(server: Server, pki: PKI) -> None:
    with _client(pki) as client:
        body = client.get(f"{server.url}/direct").json()
    assert body["subject"] is None
    assert body["tls"]["client_cert_name"] is None
    assert body["tls"]["tls_version"] in (0x0303, 0x0304)


def test_every_request_of_a_keep_alive_connection_sees_the_certificate(server: Server, pki: PKI) -> None:
    with _client(pki, pki.device) as client:
        first = client.get(f"{server.url}/direct").json()
        second = client.post(f"{server.url}/direct", content=b"x" * 1000).json()
        third = client.get(f"{server.url}/direct").json()
    assert first["client_port"] == second["client_port"] == third["client_port"]  # one connection
    assert first["subject"] == second["subject"] == third["subject"] == "CN=device-7"


def test_tls_1_2_also_carries_the_certificate(server: Server, pki: PKI) -> None:
    with _client(pki, pki.device, max_version=ssl.TLSVersion.TLSv1_2) as client:
        body = client.get(f"{server.url}/direct").json()
    assert body["subject"] == "CN=device-7"
    assert body["tls"]["tls_version"] == 0x0303


def test_a_certificate_from_an_unknown_ca_is_refused_at_the_tls_layer(server: Server, pki: PKI) -> None:
    before = len(server.calls)
    # TLS 1.3: the client's handshake ends first; it finds the server's alert on its first read.
    with _client(pki, pki.stranger) as client, pytest.raises(httpx.TransportError):
        client.get(f"{server.url}/direct")
    # TLS 1.2: the handshake itself fails (asyncio's SSL transport closes without an alert).
    with (
        _client(pki, pki.stranger, max_version=ssl.TLSVersion.TLSv1_2) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"{server.url}/direct")
    assert len(server.calls) == before  # the app never saw a request
    with _client(pki, pki.device) as client:  # and the server is fine afterwards
        assert client.get(f"{server.url}/direct").json()["subject"] == "CN=device-7"


def test_a_header_from_a_trusted_proxy_gives_the_certificate(server: Server, pki: PKI) -> None:
    with _client(pki) as client:
        body = client.get(f"{server.url}/peer", headers={HEADER: _nginx_escaped(pki.device.cert)}).json()
    assert body["subject"] == "CN=device-7" and body["serial"] == 0x1234ABCD


def test_the_same_header_from_an_untrusted_address_is_ignored(server: Server, pki: PKI) -> None:
    with _client(pki) as client:
        body = client.get(f"{server.url}/direct", headers={HEADER: _nginx_escaped(pki.device.cert)}).json()
    assert body["subject"] is None


def test_the_tls_certificate_wins_over_a_header(server: Server, pki: PKI) -> None:
    forged = pki.stranger.cert
    with _client(pki, pki.device) as client:
        body = client.get(f"{server.url}/peer", headers={HEADER: _nginx_escaped(forged)}).json()
    assert body["subject"] == "CN=device-7"


def test_a_garbage_header_from_a_trusted_proxy_gives_none(server: Server, pki: PKI) -> None:
    with _client(pki) as client:
        response = client.get(f"{server.url}/peer", headers={HEADER: "-----BEGIN%20CERTIFICATE-----%0Azz"})
    assert response.status_code == 200 and response.json()["subject"] is None


def test_plain_http_has_no_tls_extension(pki: PKI) -> None:
    """The classes serve plain HTTP unchanged (a proxy in front may talk HTTP to winmdm)."""
    for http in (GuardedHttpToolsProtocol, GuardedH11Protocol):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(APP, http=http, lifespan="off", log_level="warning")
        uv = uvicorn.Server(config)
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)
        try:
            headers = {HEADER: _nginx_escaped(pki.device.cert)}
            body = httpx.get(f"http://127.0.0.1:{port}/peer", headers=headers, timeout=10).json()
            assert body["tls"] is None and body["subject"] == "CN=device-7"
        finally:
            uv.should_exit = True
            thread.join(10)
            sock.close()


def test_the_protocol_is_httptools_like_uvicorns_auto() -> None:
    protocol = guarded_protocol(header_timeout=5, max_connections=20)
    assert issubclass(protocol, GuardedHttpToolsProtocol)
    assert (protocol.header_timeout, protocol.max_connections) == (5, 20)


# peer_certificate on ASGI scopes


def _scope(client: str | None, *headers: tuple[str, str | bytes], tls: dict | None = None) -> dict:
    scope: dict = {
        "type": "http",
        "client": (client, 51000) if client else None,
        "headers": [(k.lower().encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers],
    }
    if tls is not None:
        scope["extensions"] = {"tls": tls}
    return scope


def _subject(scope: dict, trusted: list = LOOPBACK) -> str | None:
    cert = peer_certificate(scope, trusted_proxies=trusted, header_name=HEADER)
    return cert.subject.rfc4514_string() if cert else None


def test_header_formats_accepted_from_a_trusted_proxy(pki: PKI) -> None:
    cert = pki.device.cert
    der = cert.public_bytes(serialization.Encoding.DER)
    b64 = base64.b64encode(der).decode()
    for value in (
        _nginx_escaped(cert),
        _pem(cert),  # unescaped PEM (newlines cannot travel in a header, but accept it)
        b64,
        urllib.parse.quote(b64, safe=""),
        f"  {b64}  ",
    ):
        assert _subject(_scope("127.0.0.1", (HEADER, value))) == "CN=device-7", value


def test_header_name_is_case_insensitive_and_ipv6_and_mapped_addresses_work(pki: PKI) -> None:
    value = _nginx_escaped(pki.device.cert)
    assert _subject(_scope("127.0.0.1", (HEADER.upper(), value))) == "CN=device-7"
    assert _subject(_scope("::1", (HEADER, value))) == "CN=device-7"
    assert _subject(_scope("::ffff:127.0.0.1", (HEADER, value))) == "CN=device-7"
    assert _subject(_scope("::ffff:10.1.2.3", (HEADER, value)), ELSEWHERE) == "CN=device-7"


@pytest.mark.parametrize("client", ["10.0.0.1", "192.168.1.5", "::2", None, "not-an-ip", "unix:/sock"])
def test_header_from_an_untrusted_or_unknown_address_is_ignored(
    pki: PKI, client: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    scope = _scope(client, (HEADER, _nginx_escaped(pki.device.cert)))
    with caplog.at_level(logging.WARNING, logger="winmdm.web.client_cert"):
        assert _subject(scope) is None
        assert _subject(scope) is None  # asked twice in one request: one warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not a trusted proxy" in warnings[0].getMessage()


def test_no_trusted_proxies_means_no_header(pki: PKI) -> None:
    assert _subject(_scope("127.0.0.1", (HEADER, _nginx_escaped(pki.device.cert))), []) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "%ZZ%",
        "%FF%FE",
        "-----BEGIN CERTIFICATE-----%0AAAAA%0A-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----",
        base64.b64encode(b"not a certificate").decode(),
        "QUJD!!",
        "A" * 40_000,
        b"\xff\xfe\x00binary",
        "%00%01",
    ],
)
def test_malformed_headers_give_none(value: str | bytes, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="winmdm.web.client_cert"):
        assert _subject(_scope("127.0.0.1", (HEADER, value))) is None
    assert parse_certificate_header(value) is None


def test_two_headers_are_refused(pki: PKI) -> None:
    value = _nginx_escaped(pki.device.cert)
    assert _subject(_scope("127.0.0.1", (HEADER, value), (HEADER, value))) is None


def test_no_header_and_no_tls_gives_none() -> None:
    assert _subject(_scope("127.0.0.1")) is None
    assert _subject({"type": "http"}) is None


def test_tls_extension_first_and_empty_chain_falls_back_to_a_trusted_header(pki: PKI) -> None:
    with_cert = {"client_cert_chain": [_pem(pki.device.cert)], "client_cert_name": "CN=device-7"}
    header = (HEADER, _nginx_escaped(pki.stranger.cert))
    assert _subject(_scope("10.9.9.9", tls=with_cert)) == "CN=device-7"
    assert _subject(_scope("127.0.0.1", header, tls=with_cert)) == "CN=device-7"
    # A proxy talking TLS to winmdm without a client certificate: the header counts.
    assert _subject(_scope("127.0.0.1", header, tls={"client_cert_chain": []})) == "CN=stranger"
    assert _subject(_scope("10.9.9.9", header, tls={"client_cert_chain": []})) is None


def test_an_unreadable_tls_extension_gives_none() -> None:
    assert _subject(_scope("127.0.0.1", tls={"client_cert_chain": ["not pem"]})) is None
