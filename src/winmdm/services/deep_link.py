"""The ms-device-enrollment: deep link (protocol.md §7, decision 7).

`ms-device-enrollment:?mode=mdm&username=<UPN>&servername=<discovery URL>`, values URL-encoded.
How Windows passes other parameters on is undocumented, so a pre-authorized enrollment token
travels in the servername URL's own query (the client POSTs Discover to exactly that URL); winmdm
hands it on in the AuthenticationServiceUrl, where the sign-in page accepts it in place of
signing in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from winmdm.errors import InvalidInput
from winmdm.idp.enrollment_token import EnrollmentTokens
from winmdm.services.endpoints import Endpoints

LINK_TOKEN_PARAMETER = "token"
DEFAULT_LINK_LIFETIME = timedelta(days=7)


def deep_link(username: str | None, servername: str) -> str:
    params = {"mode": "mdm"}
    if username:
        params["username"] = username
    params["servername"] = servername
    return "ms-device-enrollment:?" + urlencode(params, quote_via=quote, safe="")


class DeepLinks:
    def __init__(
        self, *, tokens: EnrollmentTokens, endpoints: Endpoints, lifetime: timedelta = DEFAULT_LINK_LIFETIME
    ) -> None:
        self._tokens = tokens
        self._lifetime = lifetime
        self._endpoints = endpoints

    @property
    def lifetime(self) -> timedelta:
        """How long a pre-authorized link's token stays valid."""
        return self._lifetime

    def link(self, username: str | None, *, preauthorize: bool, now: datetime) -> str:
        """A link for Settings; with `preauthorize`, one user may enroll one PC without signing in
        until the link expires (single use, like any enrollment token)."""
        name = (username or "").strip()
        if name and ("@" not in name or len(name) > 256 or not name.isprintable()):
            raise InvalidInput(f"{name!r} is not a user principal name (user@domain)", field="username")
        servername = self._endpoints.discovery
        if preauthorize:
            if not name:
                raise InvalidInput("a pre-authorized link names its user: give --username", field="username")
            token = self._tokens.issue(name, now, lifetime=self._lifetime)
            servername += "?" + urlencode({LINK_TOKEN_PARAMETER: token})
        return deep_link(name or None, servername)
