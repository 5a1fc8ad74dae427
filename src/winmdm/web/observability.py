"""Per-request bookkeeping around the whole app: HTTP metrics and the request's log scope.

A plain ASGI middleware (no BaseHTTPMiddleware: no extra task or body copy per request), so a
check-in pays two clock reads and two labelled metric updates for it. Requests are counted by
route template (`/api/v1/hosts/{host_id}`), never by raw path: paths carry ids and tokens, and
each distinct path would be a series of its own.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from winmdm import log_context
from winmdm.metrics import Metrics

UNMATCHED = "(unmatched)"


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        # Labelled children by label values: a dict lookup per request instead of `labels()`
        # (which validates and locks each time). Bounded: route templates x methods x statuses.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        base = scope.get("root_path", "")
        status = 500  # an exception with no answer is ServerErrorMiddleware's 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scoped = log_context.open_scope()
        try:
            await self._app(scope, receive, observed_send)
        finally:
            log_context.close_scope(scoped)
            self._observe(route_template(scope, base), scope["method"], status, time.perf_counter() - started)

    def _observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        counter = self._counted.get((endpoint, method, status))
        if counter is None:
            counter = self._counted[(endpoint, method, status)] = self._metrics.http_requests.labels(
                endpoint, method, str(status)
            )
        timer = self._timed.get((endpoint, method))
        if timer is None:
            timer = self._timed[(endpoint, method)] = self._metrics.http_duration.labels(endpoint, method)
        counter.inc()
        timer.observe(seconds)


def route_template(scope: Scope, base: str = "") -> str:
    """The template of the route that answered: the routers leave it in the scope ("route", and
    a mounted app's prefix in "root_path"). A mount that is itself the answer (static files)
    counts as one endpoint."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED
    mounted = str(scope.get("root_path", ""))[len(base) :]
    if isinstance(route, Mount):
        return mounted or route.path
    return mounted + str(getattr(route, "path", UNMATCHED))
