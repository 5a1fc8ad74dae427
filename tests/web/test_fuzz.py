"""A short run of the structure-aware fuzzer over every device endpoint and osquery's TLS remote
API (tests/support/fuzz.py; `scripts/fuzz` runs the full campaign): no 5xx but SOAP faults, no
exception, no traceback, osquery's answers in its JSON shape with the status each input calls for."""

from __future__ import annotations

import pytest

from tests.support.fuzz import campaign


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_short_fuzz_run_finds_nothing(kind: str, request: pytest.FixtureRequest) -> None:
    """On both databases: PostgreSQL refuses values SQLite stores (NUL in text, ids past 64
    bits), so what the fuzzer sends must be refused before it reaches either."""
    postgres_url = request.getfixturevalue("postgres_server_url") if kind == "postgresql" else None
    outcome = campaign(1500, seed=20261204, postgres_url=postgres_url)
    assert outcome.inputs == 1500
    assert outcome.problems == []
    # The inputs reached the endpoints' own answers, not one refusal for everything.
    assert {200, 400}.issubset(outcome.by_status) and len(outcome.by_status) >= 4
    # The osquery family got its share, past authentication (200) as well as refused.
    osquery = outcome.by_kind["osquery"]
    assert 200 <= sum(osquery.values()) <= 400
    assert {200, 400, 401, 413}.issubset(osquery), osquery
