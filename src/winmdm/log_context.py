"""The ids a log line is about (host, device, enrollment activity, session, admin), per request.

The web layer opens one scope per request (`request_scope`); code anywhere below it, including
service code run in a worker thread, adds what it learns with `bind`. The scope is a mutable dict
held in a context variable: a worker thread runs in a copy of the request's context, and a copy
still holds the same dict, so what a service binds in its thread is seen by the request's later
log lines too (uvicorn's access line among them). Outside any request (the CLI, start-up) `bind`
opens a scope of its own.

Only ids go here: never a token, a password, a digest or a certificate (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token

# The keys a JSON log line may carry besides time, level, logger and message.
FIELDS = ("host", "device", "activity", "session", "admin")

_scope: ContextVar[dict[str, str] | None] = ContextVar("winmdm_log_scope", default=None)


@contextmanager
def request_scope() -> Iterator[dict[str, str]]:
    """A fresh scope for one request; the previous one (if any) comes back afterwards."""
    token = open_scope()
    try:
        yield _scope.get() or {}
    finally:
        close_scope(token)


def open_scope() -> Token[dict[str, str] | None]:
    """`request_scope` without the context manager, for the per-request hot path."""
    return _scope.set({})


def close_scope(token: Token[dict[str, str] | None]) -> None:
    _scope.reset(token)


def bind(**ids: object) -> None:
    """Add ids to the current scope; None values are skipped. Unknown keys are refused, so a
    secret cannot slip in under a new name."""
    fields = _scope.get()
    if fields is None:
        fields = {}
        _scope.set(fields)
    for key, value in ids.items():
        if key not in FIELDS:
            raise ValueError(f"{key!r} is not a log field (one of {', '.join(FIELDS)})")
        if value is not None:
            fields[key] = str(value)


def current() -> Mapping[str, str]:
    """The ids bound in this context (empty outside any scope)."""
    return _scope.get() or {}
