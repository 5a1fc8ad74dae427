"""Slow and greedy clients against a real `winmdm serve` over TLS (web/connections.py, web/body.py):
header and body timeouts, the connection limit, the open-file limit, and a client that goes away
in the middle of its body (one log line, no traceback)."""

from __future__ import annotations

import contextlib
import resource
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import RunningServer, start_server

MANAGEMENT = "/ManagementServer/MDM.svc"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("slow") / "data",
        {"WINMDM_HEADER_TIMEOUT": "1", "WINMDM_BODY_TIMEOUT": "1", "WINMDM_MAX_CONNECTIONS": "10"},
    )
    yield running
    running.stop()


def _connect(server: RunningServer) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(server.dev_ca))
    port = int(server.url.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def _read_all(sock: ssl.SSLSocket, limit: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `limit` seconds pass)."""
    sock.settimeout(limit)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _healthy(server: RunningServer) -> bool:
    with server.client() as client:
        return client.get(server.url + "/healthz").text == "ok"


def test_a_client_trickling_header_lines_is_answered_408_and_closed(server) -> None:
    sock = _connect(server)
    sock.sendall(f"POST {MANAGEMENT} HTTP/1.1\r\nHost: localhost\r\n".encode())
    sock.settimeout(0.25)
    answer = b""
    for n in range(60):  # a header line every 0.25 s, for up to 15 s: never a whole request
        try:
            answer = sock.recv(65536)
            break
        except TimeoutError:
            sock.sendall(f"X-Slow-{n}: {n}\r\n".encode())
    answer += _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert b"The request headers did not arrive in time." in answer
    assert _healthy(server)


def test_a_kept_alive_connection_must_send_its_next_headers_in_time_too(server) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    sock.settimeout(5)
    first = b""
    while not first.endswith(b"\r\n\r\nok"):
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request, never finished
    assert _read_all(sock).startswith(b"HTTP/1.1 408")


def test_a_body_that_comes_too_slowly_is_408(server) -> None:
    sock = _connect(server)
    sock.sendall(
        f"POST {MANAGEMENT} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/vnd.syncml.dm+xml\r\nContent-Length: 5000\r\n\r\n<SyncML>".encode()
    )
    answer = _read_all(sock, limit=15)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive in time" in answer
    assert _healthy(server)


def test_a_client_gone_mid_body_is_one_log_line(server) -> None:
    sock = _connect(server)
    sock.sendall(
        f"POST {MANAGEMENT} HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/vnd.syncml.dm+xml\r\nContent-Length: 100000\r\n\r\n".encode()
        + b"<SyncML>" * 100
    )
    sock.close()
    deadline = time.monotonic() + 10
    while "client went away" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"client went away after 800 bytes of its request body to {MANAGEMENT}" in server.log()
    assert "Traceback" not in server.log() and "ClientDisconnect" not in server.log()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("crowded") / "data",
        {"WINMDM_HEADER_TIMEOUT": "60", "WINMDM_MAX_CONNECTIONS": "10"},
    )
    yield running
    running.stop()


def test_past_the_connection_limit_a_new_client_gets_503_and_the_others_are_served(crowded) -> None:
    held: list[ssl.SSLSocket] = []
    refused = b""
    try:
        for _ in range(20):
            sock = _connect(crowded)
            sock.settimeout(0.5)
            try:
                refused = sock.recv(65536)
                break
            except TimeoutError:
                held.append(sock)  # accepted, and idle
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable"), refused
        assert b"Retry-After: 5" in refused and b"try again in a few seconds" in refused
        assert len(held) == 10
        # The connections already open are still served.
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if _healthy(crowded):
                break
        time.sleep(0.1)
    assert _healthy(crowded)
    assert "refusing new connections: 10 are open, the limit (WINMDM_MAX_CONNECTIONS) is 10" in crowded.log()


def test_the_open_file_limit_is_raised_for_the_connections(tmp_path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 2000 + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        wanted = hard  # the most the machine allows
    server = start_server(
        tmp_path / "data",
        {"WINMDM_MAX_CONNECTIONS": "2000"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard)),
    )
    try:
        soft = next(
            int(line.split()[3])
            for line in Path(f"/proc/{server.process.pid}/limits").read_text().splitlines()
            if line.startswith("Max open files")
        )
    finally:
        server.stop()
    assert soft == wanted
