"""The activity feed, newest first, paged (services/activities.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from winmdm.domain.fleet import Page as ResultPage
from winmdm.errors import InvalidInput
from winmdm.web.ui.activity_text import describe_activity
from winmdm.web.ui.page import Page, admin_page, whole_number

PER_PAGE = 50


@admin_page("activities")
def activities(page: Page) -> Response:
    error = None
    try:
        number = whole_number(page.query("page"), "page") or 1
        host_id = whole_number(page.query("host_id"), "host_id")
    except InvalidInput as exc:
        error, number, host_id = exc.message, 1, None
    result: ResultPage = page.runtime.activities.list(page=number, per_page=PER_PAGE, host_id=host_id)

    def page_url(n: int) -> str:
        query = {"page": str(n)} | ({"host_id": str(host_id)} if host_id else {})
        return "/activities?" + urlencode(query)

    return page.render(
        "activities.html",
        status=400 if error else 200,
        title="Activities",
        activities=result.items,
        result=result,
        host_id=host_id,
        filter_error=error,
        page_url=page_url,
        describe_activity=describe_activity,
    )


def routes() -> list[Route]:
    return [Route("/activities", activities, methods=["GET"])]
