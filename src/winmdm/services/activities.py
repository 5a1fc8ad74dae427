"""The activity feed (docs/api.md "Activities"): what happened, newest first, for the whole
fleet or one host. Activities are written by the services that make the changes."""

from __future__ import annotations

from winmdm.domain.fleet import DEFAULT_PER_PAGE, Page, check_paging
from winmdm.domain.management import Activity
from winmdm.services.hosts import host_missing
from winmdm.storage.protocols import Storage


class ActivityFeed:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def list(
        self, page: int = 1, per_page: int = DEFAULT_PER_PAGE, host_id: int | None = None
    ) -> Page[Activity]:
        """One page, newest first. With `host_id`, that host's activities only (NotFound for an
        unknown host; a deleted host's activities stay in the fleet's feed)."""
        check_paging(page, per_page)
        with self._storage.transaction() as tx:
            if host_id is not None and tx.hosts.get(host_id) is None:
                raise host_missing(host_id)
            total = tx.activities.count(host_id=host_id)
            offset = (page - 1) * per_page
            items = (
                tx.activities.list(host_id=host_id, limit=per_page, offset=offset) if offset < total else []
            )
        return Page(items=tuple(items), total=total, page=page, per_page=per_page)
