"""Database transaction time for the metrics, from the connection pool's own events.

Every winmdm transaction is `engine.begin()`: a connection taken from the pool, one transaction,
the connection given back after commit or rollback. Timing checkout to checkin therefore times
the transaction, commit included. Pool events are used on purpose rather than the connection's
begin/commit events: any connection event makes SQLAlchemy dispatch events around every
statement of every connection (storage/database.py says the same of "begin"), while pool events
cost two clock reads and one histogram observation per transaction and nothing per statement.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.engine import Engine

_STARTED = "winmdm_checked_out_at"


def time_transactions(engine: Engine, histogram: Histogram) -> None:
    """Observe into `histogram` how long each pooled connection of `engine` is held."""

    @event.listens_for(engine, "checkout")
    def _taken(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.info[_STARTED] = time.perf_counter()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        # A connection invalidated mid-transaction comes back without a record of its own.
        started = record.info.pop(_STARTED, None) if record is not None else None
        if started is not None:
            histogram.observe(time.perf_counter() - started)
