"""/api/v1/docs in Chromium on a machine with no way out: Swagger UI comes from the server itself,
renders every endpoint of the OpenAPI 3.1 document, and breaks no Content-Security-Policy rule."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui.conftest import UIServer


def test_the_api_docs_work_offline_under_a_csp(free: UIServer, anonymous) -> None:
    requested: list[str] = []
    anonymous.on("request", lambda request: requested.append(request.url))
    answer = anonymous.goto(free.url + "/api/v1/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(anonymous.locator(".swagger-ui .info .title")).to_contain_text("winmdm admin API")
    expect(
        anonymous.locator(".opblock-summary-path").filter(has_text=re.compile(r"^/hosts$"))
    ).not_to_have_count(0)
    expect(anonymous.locator(".opblock-summary-path").filter(has_text="/login")).not_to_have_count(0)
    assert requested and all(url.startswith(free.url) for url in requested), requested
