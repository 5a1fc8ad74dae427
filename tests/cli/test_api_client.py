"""The CLI's API client without a server: every API error code to its exit code, answers that are
not the API, where the server and token come from, and big transfers in batches."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from winmdm.cli import hosts
from winmdm.cli.api_client import (
    APIClient,
    APIError,
    Credentials,
    explained,
    one_line_errors,
    save_credentials,
    server_url,
)
from winmdm.cli.exits import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHENTICATED,
    EXIT_UNREACHABLE,
)

SERVER = "https://mdm.example.com"


def client_answering(
    status: int, body: object, *, token: str | None = "t", headers: dict | None = None
) -> APIClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, text=str(body), headers=headers)

    api = APIClient(SERVER, token)
    api._http = httpx.Client(base_url=SERVER + "/api/v1", transport=httpx.MockTransport(answer))
    return api


def error(code: str, message: str = "what is wrong", field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (400, "bad_request", EXIT_INVALID),
        (401, "unauthenticated", EXIT_UNAUTHENTICATED),
        (403, "forbidden", EXIT_UNAUTHENTICATED),
        (404, "not_found", EXIT_NOT_FOUND),
        (409, "conflict", EXIT_CONFLICT),
        (413, "too_large", EXIT_INVALID),
        (422, "invalid", EXIT_INVALID),
        (422, "premium_required", EXIT_INVALID),
        (429, "rate_limited", EXIT_UNAUTHENTICATED),
        (500, "server_error", EXIT_FAILURE),
    ],
)
def test_each_api_error_code_has_its_exit_code(status: int, code: str, exit_code: int) -> None:
    with pytest.raises(APIError) as caught:
        client_answering(status, error(code)).get("/hosts")
    assert caught.value.exit_code == exit_code and caught.value.code == code
    assert caught.value.message.startswith("what is wrong")


def test_an_expired_session_says_to_sign_in_again_and_a_limit_says_when() -> None:
    with pytest.raises(APIError, match=r"run winmdm login --server https://mdm.example.com"):
        client_answering(401, error("unauthenticated", "the token expired")).get("/hosts")
    with pytest.raises(APIError, match=r"retry after 600 seconds"):
        client_answering(429, error("rate_limited", "too many"), headers={"Retry-After": "600"}).get("/x")


def test_answers_that_are_not_the_api() -> None:
    with pytest.raises(APIError) as caught:
        client_answering(502, "<html>bad gateway</html>").get("/hosts")
    assert caught.value.exit_code == EXIT_UNREACHABLE and "unavailable" in caught.value.message
    with pytest.raises(APIError) as caught:
        client_answering(200, "<html>a login page</html>").get("/hosts")
    assert caught.value.exit_code == EXIT_FAILURE and "not the winmdm API" in caught.value.message
    with pytest.raises(APIError) as caught:
        client_answering(200, [1, 2]).get("/hosts")  # JSON, but every API answer is an object
    assert caught.value.exit_code == EXIT_FAILURE and "not the winmdm API" in caught.value.message
    assert client_answering(204, "").delete("/hosts/1") is None


def test_an_object_without_the_documented_keys_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited, one_line_errors():
        client_answering(200, {"unrelated": 1}).get("/hosts")["hosts"]
    assert exited.value.code == EXIT_FAILURE
    assert capsys.readouterr().err.startswith("winmdm: the server's answer is not what this winmdm expects")


def test_the_field_is_shown_only_when_the_message_does_not_name_it() -> None:
    assert (
        explained(APIError("mdm.x must be true or false.", 4, field="mdm.x"))
        == "mdm.x must be true or false."
    )
    assert explained(APIError("this field is required", 4, field="name")) == "name: this field is required"


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("https://mdm.example.com", SERVER),
        ("https://mdm.example.com/", SERVER),
        ("https://mdm.example.com:8443/api/v1/", "https://mdm.example.com:8443"),
    ],
)
def test_server_urls(given: str, url: str) -> None:
    assert server_url(given) == url


@pytest.mark.parametrize("given", ["mdm.example.com", "https://[::1", "https://mdm.example.com:abc"])
def test_a_server_url_that_is_not_one_is_a_setting_error(given: str) -> None:
    with pytest.raises(APIError) as caught:
        server_url(given)
    assert caught.value.exit_code == EXIT_CONFIG


def test_where_server_and_token_come_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WINMDM_SERVER_URL", "WINMDM_API_TOKEN", "WINMDM_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(APIError) as caught:
        APIClient.configured(None, None)
    assert caught.value.exit_code == EXIT_CONFIG

    path = save_credentials(Credentials(server=SERVER, token="stored"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text())["token"] == "stored"
    assert APIClient.configured(None, None)._token == "stored"
    # Another server never gets the stored token.
    with pytest.raises(APIError) as caught:
        APIClient.configured("https://other.example.com", None)
    assert caught.value.exit_code == EXIT_UNAUTHENTICATED
    monkeypatch.setenv("WINMDM_API_TOKEN", "from-env")
    assert APIClient.configured("https://other.example.com", None)._token == "from-env"
    assert APIClient.configured(None, None)._token == "from-env"


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def post(self, path: str, body: dict) -> dict:
        assert path == "/hosts/transfer"
        self.batches.append(body["host_ids"])
        return {"transferred": len(body["host_ids"])}


@pytest.mark.parametrize("progress", [True, False])
def test_a_big_transfer_goes_in_batches_of_500(progress: bool) -> None:
    api = Recorder()
    assert hosts._transfer(api, 3, list(range(1, 1202)), progress=progress) == 1201
    assert [len(b) for b in api.batches] == [500, 500, 201]
