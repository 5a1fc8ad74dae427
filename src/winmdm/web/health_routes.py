"""Liveness and readiness for load balancers and orchestrators (docs/operations.md).

/healthz: the process answers HTTP (restart it when this fails). /readyz: it can also do its
work: the database answers and its schema is the one this code was written for (send it traffic
only when this is 200). A schema behind or ahead of this code means an upgrade is half done.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from winmdm.errors import ConfigError
from winmdm.storage.database import current_revision, head_revision

log = logging.getLogger("winmdm.readiness")


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    reason: str


class Readiness:
    """One check at a time: while the database is slow to answer, further probes are told so at
    once instead of each holding a worker thread. The reason given to the (unauthenticated)
    prober is short; the database's own error goes to the log, once per change of state."""

    def __init__(self, engine: Engine | None, head: str) -> None:
        self._engine = engine
        self._head = head
        self._running = threading.Lock()
        self._last: bool | None = None

    def check(self) -> Verdict:
        if not self._running.acquire(blocking=False):
            return Verdict(False, "not ready: the previous check is still waiting for the database")
        try:
            verdict, detail = self._check()
        finally:
            self._running.release()
        if verdict.ready != self._last:
            self._last = verdict.ready
            if verdict.ready:
                log.info("ready: the database answers at schema %s", self._head)
            else:
                log.warning("%s (%s)", verdict.reason, detail or verdict.reason)
        return verdict

    def _check(self) -> tuple[Verdict, str | None]:
        if self._engine is None:
            return Verdict(False, "not ready: no database"), None
        try:
            current = current_revision(self._engine)
        except ConfigError as exc:  # cannot connect (the message hides the password)
            return Verdict(False, "not ready: the database is unreachable"), exc.message
        except SQLAlchemyError as exc:
            return Verdict(False, "not ready: the database failed to answer"), type(exc).__name__
        if current is None:
            return Verdict(False, "not ready: the database has no winmdm schema (never migrated)"), None
        if current != self._head:
            return (
                Verdict(
                    False,
                    f"not ready: the database schema is at {current}, this winmdm needs {self._head} "
                    "(restart winmdm to migrate, or upgrade this instance)",
                ),
                None,
            )
        return Verdict(True, "ready"), None


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def ready(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    verdict = await run_in_threadpool(readiness.check)
    return PlainTextResponse(verdict.reason, status_code=200 if verdict.ready else 503)


def readiness_for(engine: Engine | None) -> Readiness:
    """The check /readyz runs; the newest migration is read once, it cannot change while running."""
    return Readiness(engine, head_revision())


def routes() -> list[Route]:
    return [Route("/healthz", health, methods=["GET"]), Route("/readyz", ready, methods=["GET"])]
