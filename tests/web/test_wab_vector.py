"""The page that hands the enrollment token back to Windows has the shape of the documented one
(vectors/federated/wab_auth_response.html): one POST form to exactly the appru, with the token
in a hidden `wresult` field, submitted by itself, served as text/html; charset=UTF-8."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import lxml.html

from tests.vectors import vector

APPRU = "ms-app://windows.immersivecontrolpanel"


def _form(html: str) -> tuple[str, str, dict[str, tuple[str, str]], bool]:
    page = lxml.html.fromstring(html)
    (form,) = page.xpath("//form")
    inputs = {i.get("name"): (i.get("type"), i.get("value")) for i in form.xpath(".//input") if i.get("name")}
    scripted = any("submit" in (s.text or "") for s in page.xpath("//script"))
    return form.get("method").lower(), form.get("action"), inputs, scripted


def test_the_token_page_matches_the_documented_one(client) -> None:
    runtime = client.app.state.runtime
    token = runtime.enrollment_tokens.issue("alice@corp.example", datetime.now(UTC))
    response = client.get("/EnrollmentServer/Authenticate?" + urlencode({"appru": APPRU, "token": token}))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    method, action, inputs, scripted = _form(response.text)
    their_method, their_action, their_inputs, their_script = _form(
        vector("federated/wab_auth_response.html").decode()
    )
    assert (method, scripted) == (their_method, their_script) == ("post", True)
    assert their_action == "ms-app://appid" and action == APPRU  # the action is the request's appru
    assert inputs["wresult"] == ("hidden", token)
    assert their_inputs["wresult"][0] == "hidden"
