"""A real OIDC identity provider for the tests (npm oidc-provider, tests/support/oidc_idp/idp.js),
and a browser stand-in that signs in at it the way a person would: follow redirects, fill the
login form, accept the consent form.

    with TestIdP.start() as idp:                  # listening: idp.issuer is known
        idp.configure(redirect_uris=[callback])   # the client, once winmdm's URL is known
        response = sign_in(browser, authenticate_url, "alice@corp.example")

`npm ci` runs once, the first time, when node_modules is missing (about 2 s, 3.4 MB, 40 packages).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "USERS", "IdPForm", "TestIdP", "ensure_installed", "sign_in"]

IDP_DIR = Path(__file__).parent / "oidc_idp"
CLIENT_ID = "winmdm-tests"
CLIENT_SECRET = "a-test-client-secret-of-reasonable-length"
USERS = ("alice@corp.example", "bob@corp.example")

_install_lock = threading.Lock()


def ensure_installed() -> None:
    """`npm ci` in tests/support/oidc_idp when its node_modules is missing (the lock file pins it).

    A file lock keeps parallel test processes from installing at the same time."""
    marker = IDP_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    lock_path = Path(tempfile.gettempdir()) / "winmdm-oidc-idp-npm-ci.lock"
    with _install_lock, lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        npm = shutil.which("npm")
        node = shutil.which("node")
        if npm is None or node is None:
            raise RuntimeError("the OIDC test IdP needs Node.js 20+ and npm on PATH")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=IDP_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci failed in {IDP_DIR}:\n{done.stdout}\n{done.stderr}")


@dataclass
class TestIdP:
    """One running idp.js. :meth:`start` returns it listening; :meth:`configure` makes it answer."""

    __test__ = False  # not a pytest test class

    process: subprocess.Popen
    port: int
    stderr: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> TestIdP:
        ensure_installed()
        node = shutil.which("node")
        assert node is not None
        process = subprocess.Popen(
            [node, str(IDP_DIR / "idp.js")],
            cwd=IDP_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        idp = cls(process, 0)
        threading.Thread(target=idp._drain_stderr, daemon=True).start()
        line = idp._line()
        if not line.startswith("LISTENING "):
            idp.close()
            raise RuntimeError(f"idp.js did not start: {line!r} {''.join(idp.stderr)}")
        idp.port = int(line.split()[1])
        return idp

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The winmdm settings that point at this IdP."""
        return {
            "WINMDM_OIDC_ISSUER": self.issuer,
            "WINMDM_OIDC_CLIENT_ID": CLIENT_ID,
            "WINMDM_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }

    def configure(
        self,
        *,
        redirect_uris: Iterable[str],
        users: Iterable[str] = USERS,
        auth_method: str = "client_secret_basic",
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
    ) -> TestIdP:
        options = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": list(redirect_uris),
            "users": list(users),
            "auth_method": auth_method,
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(options) + "\n")
        self.process.stdin.flush()
        line = self._line()
        if line != "READY":
            raise RuntimeError(f"idp.js did not take its configuration: {line!r} {''.join(self.stderr)}")
        return self

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> TestIdP:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _line(self) -> str:
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=30)
        if not result:
            self.close()
            raise RuntimeError(f"idp.js said nothing within 30 s: {''.join(self.stderr)}")
        return result[0].strip()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)


# -- the person at the browser ----------------------------------------------------------------


@dataclass
class IdPForm:
    action: str
    fields: dict[str, str]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[IdPForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(IdPForm(values.get("action", ""), {}))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1].fields[values["name"]] = values.get("value", "")


def forms(html: str, base_url: str) -> list[IdPForm]:
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        form.action = urljoin(base_url, form.action)
    return parser.forms


def follow(client: httpx.Client, response: httpx.Response, *, stop_at: str | None = None) -> httpx.Response:
    """Follow redirects by hand (GET, as a browser does after 302/303), stopping before `stop_at`."""
    for _ in range(20):
        if not response.is_redirect:
            return response
        target = urljoin(str(response.url), response.headers["location"])
        if stop_at is not None and target.startswith(stop_at):
            return response
        response = client.get(target)
    raise AssertionError("more than 20 redirects")


def login_at_idp(
    client: httpx.Client,
    response: httpx.Response,
    username: str,
    *,
    stop_at: str | None = None,
    consent: bool = True,
) -> httpx.Response:
    """From the IdP's login page: submit `username` (any password), then the consent form.

    Returns the first response that is not an IdP form: winmdm's page, or the redirect to
    `stop_at` when given (its Location is the callback URL).
    """
    for _ in range(4):
        response = follow(client, response, stop_at=stop_at)
        if response.is_redirect:
            return response
        found = [f for f in forms(response.text, str(response.url)) if "prompt" in f.fields]
        if not found:
            return response
        form = found[0]
        if form.fields["prompt"] == "login":
            form.fields.update({"login": username, "password": "any password"})
        elif form.fields["prompt"] == "consent" and not consent:
            return response
        response = client.post(form.action, data=form.fields)
    return response


def sign_in(client: httpx.Client, url: str, username: str) -> httpx.Response:
    """What the Windows web view does with AuthenticationServiceUrl: winmdm's page, the IdP's
    login and consent, back to winmdm's page; returns winmdm's final answer."""
    return login_at_idp(client, client.get(url), username)
