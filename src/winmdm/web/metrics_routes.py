"""`/metrics` for Prometheus: on the main port, or on a listener of its own (docs/operations.md).

The main port faces the devices, so often the internet. Two ways to keep the metrics to the
monitoring system, usable together: WINMDM_METRICS_TOKEN (Prometheus sends it as a bearer token,
`authorization.credentials` in its scrape config) and WINMDM_METRICS_LISTEN (a plain-HTTP
listener on an internal address; /metrics then leaves the main port).
"""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm.metrics import CONTENT_TYPE, Metrics
from winmdm.runtime import Runtime

METRICS_PATH = "/metrics"
CHALLENGE = 'Bearer realm="winmdm metrics"'
REFUSED = "Send Authorization: Bearer <WINMDM_METRICS_TOKEN> to read the metrics."


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """No token configured lets everyone in; otherwise the bearer token must be the one,
    compared in constant time."""
    if expected is None:
        return True
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode("utf-8", "replace"), expected.encode("utf-8"))


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    if not token_matches(runtime.config.metrics_token, request.headers.get("authorization")):
        return PlainTextResponse(REFUSED, status_code=401, headers={"WWW-Authenticate": CHALLENGE})
    # Collecting reads /proc for the process metrics: off the event loop.
    body = await run_in_threadpool(runtime.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)


def routes(runtime: Runtime) -> list[Route]:
    """The route on the main port, unless a listener of its own serves the metrics."""
    if runtime.config.metrics_listen is not None:
        return []
    return [Route(METRICS_PATH, metrics, methods=["GET"])]


Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def wsgi_app(metrics_: Metrics, token: str | None) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """The separate listener's application: GET /metrics and nothing else."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Only GET /metrics is served here.\n"]
        if not token_matches(token, environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", CHALLENGE)],
            )
            return [REFUSED.encode("utf-8")]
        body = metrics_.exposition()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """wsgiref prints each request to stderr; a scrape every 15 s is not news."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


class MetricsListener:
    """A plain-HTTP server for /metrics in a daemon thread of `winmdm serve`."""

    def __init__(self, host: str, port: int, metrics_: Metrics, token: str | None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        self._server = make_server(
            host, port, wsgi_app(metrics_, token), server_class, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="winmdm-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
