"""The CLI's side of the admin API (docs/api.md, docs/cli.md): which server, which token, TLS
trust, and the API's one error shape turned into one stderr line and an exit code.

The server and token come from `winmdm login` (credentials.json in the user's config folder,
mode 0600), overridden by `--server` / WINMDM_SERVER_URL and WINMDM_API_TOKEN. A stored token is
only ever sent to the server it was issued by.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from winmdm import __version__
from winmdm.cli.exits import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHENTICATED,
    EXIT_UNREACHABLE,
    exit_code,
)
from winmdm.errors import WinMDMError

SERVER_ENV = "WINMDM_SERVER_URL"
TOKEN_ENV = "WINMDM_API_TOKEN"
CA_ENV = "WINMDM_CA_FILE"
API_PREFIX = "/api/v1"
TIMEOUT = 60.0

# The API's error codes (docs/api.md "Errors") -> exit codes (docs/cli.md "Exit codes").
EXITS = {
    "bad_request": EXIT_INVALID,
    "invalid": EXIT_INVALID,
    "premium_required": EXIT_INVALID,
    "too_large": EXIT_INVALID,
    "not_found": EXIT_NOT_FOUND,
    "unauthenticated": EXIT_UNAUTHENTICATED,
    "forbidden": EXIT_UNAUTHENTICATED,
    "rate_limited": EXIT_UNAUTHENTICATED,
    "conflict": EXIT_CONFLICT,
}
_GATEWAY = (502, 503, 504)


class APIError(Exception):
    """An API refusal, or no answer at all; `exit_code` is what the command exits with."""

    def __init__(self, message: str, exit_code: int, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code
        self.field = field


# --- stored login ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str
    token: str
    ca_file: str | None = None
    email: str | None = None
    expires_at: str | None = None


def credentials_path() -> Path:
    return Path(click.get_app_dir("winmdm")) / "credentials.json"


def load_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(**{k: data.get(k) for k in Credentials.__slots__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise APIError(f"{path} cannot be read ({exc}); run winmdm login again", EXIT_CONFIG) from None


def save_credentials(credentials: Credentials) -> Path:
    """Written with mode 0600 from the start (the token is a password), then moved into place."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".credentials.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(credentials), handle, indent=2)
        os.chmod(aside, 0o600)
        os.replace(aside, path)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise
    return path


def forget_credentials() -> bool:
    try:
        credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False


def server_url(value: str) -> str:
    """`https://mdm.example.com[:port]` from what an admin typed (a trailing /api/v1 is fine)."""
    text = value.strip().rstrip("/")
    text = text.removesuffix(API_PREFIX).rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port that is not a number raises here, not deep in httpx
    except ValueError:  # "https://[::1", "https://host:abc"
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise APIError(
            f"{value!r} is not a server URL; give it as https://mdm.example.com (with :port if not 443)",
            EXIT_CONFIG,
        )
    return text


# --- the client -----------------------------------------------------------------------------------


class APIClient:
    def __init__(self, server: str, token: str | None, ca_file: str | None = None) -> None:
        self.server = server
        self._token = token
        headers = {"User-Agent": f"winmdm-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=server + API_PREFIX, headers=headers, verify=_trust(ca_file), timeout=TIMEOUT
        )

    @classmethod
    def configured(cls, server: str | None, ca_file: str | None) -> APIClient:
        """The server and token from the options, the environment and the stored login."""
        stored = load_credentials()
        given = server or os.environ.get(SERVER_ENV)
        if given:
            url = server_url(given)
        elif stored is not None:
            url = stored.server
        else:
            raise APIError(
                "no winmdm server: run winmdm login --server URL --email EMAIL, "
                f"or set {SERVER_ENV} and {TOKEN_ENV}",
                EXIT_CONFIG,
            )
        same_server = stored is not None and stored.server == url
        token = os.environ.get(TOKEN_ENV) or (stored.token if same_server else None)
        if not token:
            raise APIError(
                f"not logged in to {url}: run winmdm login --server {url} --email EMAIL, or set {TOKEN_ENV}",
                EXIT_UNAUTHENTICATED,
            )
        ca = ca_file or os.environ.get(CA_ENV) or (stored.ca_file if same_server else None)
        return cls(url, token, ca)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise APIError(self._unreachable(exc), EXIT_UNREACHABLE) from None
        except httpx.TimeoutException:
            raise APIError(
                f"the winmdm server at {self.server} did not answer in {TIMEOUT:.0f}s", EXIT_UNREACHABLE
            ) from None
        except httpx.HTTPError as exc:
            raise APIError(
                f"cannot talk to the winmdm server at {self.server}: {exc}", EXIT_UNREACHABLE
            ) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):  # every API answer is an object
            return body
        raise self._error(response, body)

    def _unreachable(self, exc: httpx.ConnectError) -> str:
        reason = str(exc) or exc.__class__.__name__
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
            return (
                f"the TLS certificate of {self.server} is not trusted ({_short(reason)}); give the server's "
                f"TLS root with --ca-file or {CA_ENV} (a development server's root is "
                "<data dir>/tls/dev-tls-ca.crt)"
            )
        return f"cannot reach the winmdm server at {self.server}: {_short(reason)}"

    def _error(self, response: httpx.Response, body: Any) -> APIError:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = str(error.get("code") or "")
            message, field = error["message"], error.get("field")
            if (
                code == "unauthenticated"
                and self._token
                and response.request.url.path != API_PREFIX + "/login"
            ):
                message += f" (run winmdm login --server {self.server} to sign in again)"
            if code == "rate_limited" and response.headers.get("Retry-After"):
                message += f" (retry after {response.headers['Retry-After']} seconds)"
            return APIError(message, EXITS.get(code, EXIT_FAILURE), code=code, field=field)
        status = response.status_code
        what = f"HTTP {status} {response.reason_phrase}".strip()
        if status in _GATEWAY:
            return APIError(f"the winmdm server at {self.server} is unavailable ({what})", EXIT_UNREACHABLE)
        return APIError(
            f"{self.server} answered {what}, not the winmdm API; is this a winmdm server?", EXIT_FAILURE
        )


def _trust(ca_file: str | None) -> ssl.SSLContext | bool:
    if not ca_file:
        return True
    path = Path(ca_file).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise APIError(f"--ca-file {path}: cannot load it as PEM certificates ({exc})", EXIT_CONFIG) from None


def _short(text: str) -> str:
    return " ".join(text.split())[:300]


# --- commands -------------------------------------------------------------------------------------


def fail(message: str, code: int) -> None:
    click.echo(f"winmdm: {' '.join(message.split())}", err=True)
    sys.exit(code)


def explained(error: APIError) -> str:
    """The API's message as is (the same text as the API and the UI); the field in front when
    the message does not name it already."""
    if error.field and error.field.lower() not in error.message.lower():
        return f"{error.field}: {error.message}"
    return error.message


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    try:
        yield
    except APIError as exc:
        fail(explained(exc), exc.exit_code)
    except WinMDMError as exc:
        fail(exc.message, exit_code(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'file system'}: {exc.strerror or exc}", EXIT_FAILURE)
    except (KeyError, IndexError, TypeError) as exc:
        # An object without what the API documents: another program, or another winmdm version.
        fail(
            f"the server's answer is not what this winmdm expects ({exc.__class__.__name__}: {exc}); "
            "is it a winmdm server of the same version?",
            EXIT_FAILURE,
        )


def with_api(command: Callable[..., None]) -> Callable[..., None]:
    """Adds --server and --ca-file, and passes `api`, an APIClient, to the command."""

    @click.option("--server", "server_option", metavar="URL", help=f"winmdm server URL (or {SERVER_ENV}).")
    @click.option(
        "--ca-file",
        "ca_option",
        metavar="PEM",
        help=f"CA certificate(s) to trust for the server's TLS (or {CA_ENV}).",
    )
    @functools.wraps(command)
    def run(*args: Any, server_option: str | None, ca_option: str | None, **kwargs: Any) -> None:
        with one_line_errors(), APIClient.configured(server_option, ca_option) as api:
            command(*args, api=api, **kwargs)

    return run
