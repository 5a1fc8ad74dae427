"""The activity feed (ActivityFeed) on SQLite and PostgreSQL: newest first, paged, per host."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.services.test_hosts import ADMIN, seed
from winmdm.errors import InvalidInput, NotFound


def test_feed_is_newest_first_and_paged(runtime, clock) -> None:
    host = seed(runtime, 1)
    for n in range(5):
        runtime.teams.create(f"Team {n}", actor=ADMIN)
        clock.advance(timedelta(seconds=1))
    runtime.hosts.transfer(None, [host], actor=ADMIN)  # already in No team: no activity
    first = runtime.activities.list(page=1, per_page=2)
    assert (first.total, first.page, first.per_page) == (5, 1, 2)
    assert [a.details["team_name"] for a in first.items] == ["Team 4", "Team 3"]
    assert all(a.type == "created_team" and a.actor == ADMIN for a in first.items)
    assert [a.details["team_name"] for a in runtime.activities.list(page=3, per_page=2).items] == ["Team 0"]
    beyond = runtime.activities.list(page=4, per_page=2)
    assert beyond.items == () and beyond.total == 5
    assert runtime.activities.list().per_page == 50 and len(runtime.activities.list().items) == 5


def test_feed_of_one_host(runtime) -> None:
    finance = runtime.teams.create("Finance", actor=ADMIN).id
    host, other = seed(runtime, 1), seed(runtime, 2)
    runtime.hosts.transfer(finance, [host, other], actor=ADMIN)
    runtime.hosts.transfer(None, [host], actor=ADMIN)
    mine = runtime.activities.list(host_id=host)
    assert mine.total == 2 and [a.details["team_name"] for a in mine.items] == ["No team", "Finance"]
    assert {a.host_id for a in mine.items} == {host}
    assert runtime.activities.list(host_id=other, per_page=1).total == 1
    assert runtime.activities.list().total == 4  # created_team + three transfers


def test_feed_of_an_unknown_host_is_not_found(runtime) -> None:
    with pytest.raises(NotFound, match="no host with id 8"):
        runtime.activities.list(host_id=8)


@pytest.mark.parametrize(
    ("page", "per_page", "field"),
    [(0, 50, "page"), (-1, 50, "page"), (1, 0, "per_page"), (1, 501, "per_page"), ("2", 50, "page")],
)
def test_bad_paging_names_its_field(runtime, page, per_page, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        runtime.activities.list(page=page, per_page=per_page)
    assert caught.value.field == field


def test_largest_page_is_accepted(runtime) -> None:
    assert runtime.activities.list(per_page=500).per_page == 500
