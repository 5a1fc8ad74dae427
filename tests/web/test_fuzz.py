"""A short run of the structure-aware fuzzer over every device endpoint (tests/support/fuzz.py;
`scripts/fuzz` runs the full campaign): no 5xx but SOAP faults, no exception, no traceback."""

from __future__ import annotations

from tests.support.fuzz import campaign


def test_a_short_fuzz_run_finds_nothing() -> None:
    outcome = campaign(1500, seed=20261204)
    assert outcome.inputs == 1500
    assert outcome.problems == []
    # The inputs reached the endpoints' own answers, not one refusal for everything.
    assert {200, 400}.issubset(outcome.by_status) and len(outcome.by_status) >= 4
