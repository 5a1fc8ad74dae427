"""Values a column cannot hold, which a client can send, fail as InvalidInput, never as a driver
error (design.md §3: nothing a client sends produces a 500).

Which values those are depends on the backend: SQLite stores a NUL byte and any 64-bit id, so
there such calls simply find nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from winmdm.domain.fleet import HostFilter, TeamScope
from winmdm.errors import InvalidInput
from winmdm.storage.sql import SQLStorage, SQLTransaction

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BEYOND_INT4 = 2**31
BEYOND_INT64 = 2**70

CALLS: dict[str, Callable[[SQLTransaction], Any]] = {
    "id beyond int4": lambda tx: tx.hosts.get(BEYOND_INT4),
    "id beyond int64": lambda tx: tx.hosts.get(BEYOND_INT64),
    "team id beyond int64": lambda tx: tx.hosts.set_team(1, BEYOND_INT64),
    "limit beyond int64": lambda tx: tx.commands.list_for_host(1, limit=BEYOND_INT64),
    "offset beyond int64": lambda tx: tx.activities.list(offset=BEYOND_INT64),
    "NUL in a device id": lambda tx: tx.hosts.find_known(hw_dev_id="A\x00B", device_id=None),
    "NUL in a search": lambda tx: tx.hosts.search(HostFilter(team=TeamScope.ALL, query="a\x00")),
    "NUL in an email": lambda tx: tx.login_failures.add("a\x00@corp.example", None, at=T0),
    "lone surrogate in a name": lambda tx: tx.teams.create("team \ud800", at=T0),
}


# Unstorable on every backend; the others only on PostgreSQL.
EVERYWHERE = {"id beyond int64", "team id beyond int64", "limit beyond int64", "offset beyond int64"}
EVERYWHERE |= {"lone surrogate in a name"}


@pytest.mark.parametrize("name", list(CALLS))
def test_unstorable_value_is_invalid_input(storage: SQLStorage, name: str, database_kind: str) -> None:
    try:
        with storage.transaction() as tx:
            CALLS[name](tx)
    except InvalidInput:
        pass
    else:
        assert name not in EVERYWHERE and database_kind == "sqlite", "stored what cannot be stored"
    with storage.transaction() as tx:  # the pool's connection is fine afterwards
        assert tx.hosts.get(1) is None


def test_nul_is_stored_where_the_backend_can(storage: SQLStorage) -> None:
    """A NUL inside JSON is escaped, so it is no error on either backend."""
    with storage.transaction() as tx:
        activity = tx.activities.add("probe", at=T0, details={"note": "a\x00b"})
    assert activity.details == {"note": "a\x00b"}
