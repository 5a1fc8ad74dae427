"""The Entra MDM terms-of-use (ToU) contract: who may see the terms, and where the answer goes.

Windows opens the ToU URL registered in Entra in a web view (protocol.md §6)::

    GET <ToU URL>?redirect_uri=ms-appx-web://...&client-request-id=<GUID>&api-version=1.0
        [&mode=azureadjoin]
    Authorization: Bearer <Entra access token: oid, upn, tid, resource>

and waits for the page to navigate to ``redirect_uri`` with ``IsAccepted=true&OpaqueBlob=<blob>``,
``IsAccepted=false``, or ``error=<code>&error_description=<English>``. The blob comes back
unchanged as the ContextItem ``EnrollmentData`` of the enrollment (:func:`TermsOfUse.read_blob`).

Decisions (each the conservative reading where Microsoft is silent):

- ``redirect_uri`` must be ``ms-appx-web://<app>/...``: that scheme resolves only to a packaged
  app on the PC itself (the Entra broker), so nothing winmdm redirects to can leave the device. Any
  other value gets a refusal page and never a redirect: an ``https`` target would make winmdm an
  open redirector that hands a fresh OpaqueBlob to whatever site a link names.
- The token is checked like the enrollment token (signature, issuer, tenant allow-list, audience,
  expiry) but without the ``mdm_delegation`` scope: Microsoft lists the ToU token's claims as oid,
  upn, tid and resource, not a scope. Accepting the terms grants nothing by itself; the enrollment
  still demands a token with that scope. A user (upn chain) and ``oid`` are required.
- The bearer token is only on the GET (a form POST from the web view carries no Authorization
  header), so the GET puts what it verified (redirect_uri, client-request-id, mode, user) in a
  signed, short-lived ``state`` field of the form, and the POST trusts that field alone.
- End-user authentication: before Accept is shown, the user also signs in with the OIDC identity
  provider (login_hint = the Entra UPN). Whether to is asked with the token's Entra device id
  (``deviceid``, None when it names none): a PC winmdm knows by that id follows its team's
  setting, any other PC No team's (``mdm.end_user_authentication``, first
  ``WINMDM_END_USER_AUTH``); services/end_user_auth.py holds that rule. The GET's decision and
  the device id ride in the sealed page state, so the POST enforces what the GET decided (and a
  stricter rule an admin set for that device meanwhile), never No team's rule for a known PC.
  The GET answers SIGN_IN with a sealed pending state; the route sends the user to the provider
  with a signed cookie (:meth:`TermsOfUse.begin_sign_in`) and comes back to the terms' own
  callback (:meth:`TermsOfUse.resume_sign_in`, :meth:`TermsOfUse.signed_in`). The IdP username
  then rides in the page state and the OpaqueBlob *beside* the Entra UPN, which stays the
  enrollment's user. When the sign-in is required, an answer whose state has no IdP username is
  refused.
- Signing: HMAC-SHA256 with keys derived from the data dir's ``agent-download.key`` (one per
  purpose, so a download-link signature, a page state and a blob can never stand in for one
  another), which every instance sharing the database already shares: no new file to copy.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from winmdm.domain.identity import entra_device_id
from winmdm.errors import AuthenticationFailed, UpstreamUnavailable
from winmdm.idp.entra import EntraVerifier

__all__ = [
    "API_VERSION",
    "BLOB_LIFETIME",
    "PAGE_LIFETIME",
    "REDIRECT_SCHEME",
    "SIGN_IN_LIFETIME",
    "Decision",
    "ErrorCode",
    "Outcome",
    "PendingSignIn",
    "Prompt",
    "TermsOfUse",
    "error_redirect",
    "valid_redirect_uri",
]

log = logging.getLogger("winmdm.terms")

API_VERSION = "1.0"
REDIRECT_SCHEME = "ms-appx-web"
BLOB_LIFETIME = timedelta(minutes=30)
"""Long enough for an OOBE device to join Entra and enroll after the terms, short enough that a
leaked blob is soon worthless."""
PAGE_LIFETIME = timedelta(minutes=30)
"""How long a user may read the terms before answering."""
SIGN_IN_LIFETIME = timedelta(minutes=10)
"""How long the end-user sign-in at the identity provider may take (never past the page's own)."""

_SKEW = timedelta(minutes=5)
_MAX_REDIRECT = 2048
_NOT_IN_URLS = frozenset('<>"{}|\\^`')
_MAX_SEALED = 4096
_MAX_DESCRIPTION = 600
_BLOB_KIND = "tou-blob"
_STATE_KIND = "tou-page"
_PENDING_KIND = "tou-pending"  # the page state before the end user signed in with the IdP
_SIGN_IN_KIND = "tou-sign-in"  # the cookie of that sign-in
_RETRY = "Start again from Settings > Accounts > Access work or school"
_ADMIN = "if it keeps failing, ask your IT administrator"


class ErrorCode(enum.StrEnum):
    """The error codes of the ToU contract (protocol.md §6)."""

    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    SERVER_ERROR = "server_error"


class Outcome(enum.Enum):
    SHOW = "show"  # render the terms (prompt is set)
    REDIRECT = "redirect"  # 302 to location
    REFUSE = "refuse"  # no trustworthy redirect_uri: an error page with message, no redirect
    SIGN_IN = "sign-in"  # end-user authentication first: state is the pending state


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the terms page needs: who is asked, whether Decline is offered, the signed state."""

    user: str
    tenant_id: str
    join: bool  # mode present (Entra join): no Decline button
    state: str
    end_user: str | None = None  # who signed in with the IdP (end-user authentication)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    location: str | None = None
    error: ErrorCode | None = None
    message: str = ""
    prompt: Prompt | None = None
    state: str | None = None  # SIGN_IN: the sealed pending state for begin_sign_in
    login_hint: str | None = None  # SIGN_IN: the Entra UPN


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """An end-user sign-in in progress, read back from its cookie."""

    redirect_uri: str
    client_request_id: str
    login_hint: str
    code_verifier: str
    nonce: str
    page: dict[str, Any] = field(repr=False, compare=False)


def valid_redirect_uri(value: object) -> str | None:
    """``value`` if it is an ``ms-appx-web://<app>[/path][?query]`` URL, else None.

    ASCII only (it goes into a Location header), no fragment (the appended answer would land in
    it), no whitespace, control characters or characters RFC 3986 never allows in a URL (quotes,
    angle brackets...).
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_REDIRECT or not value.isascii():
        return None
    if any(ch.isspace() or not ch.isprintable() or ch in _NOT_IN_URLS for ch in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() != REDIRECT_SCHEME or not parts.netloc or "#" in value:
        return None
    return value


def _with_query(redirect_uri: str, pairs: list[tuple[str, str]]) -> str:
    # %20 rather than "+" for spaces: the answer is read as a URL, not as a form.
    query = urlencode(pairs, quote_via=quote, safe="")
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + query


def _error(redirect_uri: str, code: ErrorCode, description: str, client_request_id: str | None) -> Decision:
    text = description if len(description) <= _MAX_DESCRIPTION else description[:_MAX_DESCRIPTION] + "..."
    pairs = [("error", code.value), ("error_description", text)]
    if client_request_id:
        pairs.append(("client-request-id", client_request_id))
    return Decision(Outcome.REDIRECT, location=_with_query(redirect_uri, pairs), error=code, message=text)


def error_redirect(
    redirect_uri: str, code: ErrorCode, description: str, client_request_id: str | None
) -> Decision:
    """The contract's error redirect (for the routes' own failures, e.g. the IdP unreachable)."""
    return _error(redirect_uri, code, description, client_request_id)


def _refuse(message: str) -> Decision:
    return Decision(Outcome.REFUSE, message=message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict unpadded base64url: anything but the one canonical spelling is refused."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _client_request_id(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        uuid.UUID(value)
    except ValueError:
        return None
    return value


class TermsOfUse:
    """Checks ToU requests, signs the page state and the OpaqueBlob, and reads blobs back."""

    def __init__(
        self,
        verifier: EntraVerifier | None,
        clock: Callable[[], datetime],
        signing_key: bytes,
        *,
        blob_lifetime: timedelta = BLOB_LIFETIME,
        page_lifetime: timedelta = PAGE_LIFETIME,
        end_user_auth: bool | Callable[[], bool] = False,
        sign_in_lifetime: timedelta = SIGN_IN_LIFETIME,
        device_end_user_auth: Callable[[str | None], bool] | None = None,
    ) -> None:
        """``verifier`` is None when Entra is not configured: every request is then refused.

        ``end_user_auth``: the user also signs in with the OIDC identity provider before Accept.
        A callable is asked at each request (No team's setting, which an admin may change while
        the server runs: services/settings.py).

        ``device_end_user_auth``: when given, asked in place of ``end_user_auth`` with the Entra
        device id of the verified token (None when it names none): the device's team's setting
        (services/end_user_auth.py).
        """
        if len(signing_key) < 32:
            raise ValueError("the terms-of-use signing key must be at least 32 bytes")
        self._verifier = verifier
        self._clock = clock
        self._blob_key = hmac.new(signing_key, b"winmdm/terms-of-use/blob/v1", hashlib.sha256).digest()
        self._state_key = hmac.new(signing_key, b"winmdm/terms-of-use/page/v1", hashlib.sha256).digest()
        self._sign_in_key = hmac.new(signing_key, b"winmdm/terms-of-use/sign-in/v1", hashlib.sha256).digest()
        self._blob_lifetime = blob_lifetime
        self._page_lifetime = page_lifetime
        self._end_user_auth = end_user_auth
        self._device_end_user_auth = device_end_user_auth
        self._sign_in_lifetime = sign_in_lifetime

    @property
    def end_user_auth(self) -> bool:
        """Whether the user of a PC winmdm does not know must sign in (No team's rule)."""
        return self.requires_end_user_auth(None)

    def requires_end_user_auth(self, device_id: str | None) -> bool:
        """Whether the user of the Entra device ``device_id`` must sign in with the IdP now."""
        if self._device_end_user_auth is not None:
            return bool(self._device_end_user_auth(device_id))
        setting = self._end_user_auth
        return bool(setting()) if callable(setting) else setting

    # -- GET: the request from Windows ------------------------------------------------------------

    def check(self, authorization_header: str | None, params: Mapping[str, str]) -> Decision:
        """SHOW the terms, or the contract's error redirect, or REFUSE without a redirect.

        :class:`UpstreamUnavailable` (Entra's keys cannot be fetched) is answered as
        server_error; any other unexpected exception propagates: the edge answers
        :meth:`server_error` then.
        """
        redirect_uri = valid_redirect_uri(params.get("redirect_uri"))
        if redirect_uri is None:
            return _refuse(
                "This page must be opened by Windows while connecting to a work or school account: "
                f"its redirect_uri must be an {REDIRECT_SCHEME}:// address. {_RETRY}; {_ADMIN}."
            )
        raw_crid = params.get("client-request-id")
        crid = _client_request_id(raw_crid)
        version = params.get("api-version")
        if version != API_VERSION:
            shown = "missing" if version is None else repr(version[:40])
            return _error(
                redirect_uri,
                ErrorCode.INVALID_REQUEST,
                f"This server supports terms-of-use api-version {API_VERSION}; the request's "
                f"api-version is {shown}. Update Windows and try again; {_ADMIN}.",
                crid,
            )
        if crid is None:
            return _error(
                redirect_uri,
                ErrorCode.INVALID_REQUEST,
                f"The request's client-request-id is missing or is not a GUID. {_RETRY}; {_ADMIN}.",
                None,
            )
        token = _bearer(authorization_header)
        if token is None:
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                "The request carries no Entra access token (Authorization: Bearer). Open the terms "
                f"from Windows, not from a browser. {_RETRY}; {_ADMIN}.",
                crid,
            )
        if self._verifier is None:
            log.warning("terms of use refused: Entra is not configured (WINMDM_ENTRA_TENANT_IDS)")
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                "This server does not accept Entra accounts yet. Ask your IT administrator to "
                "set WINMDM_ENTRA_TENANT_IDS on the winmdm server.",
                crid,
            )
        now = self._clock()
        try:
            identity = self._verifier.verify(token, now, require_scope=False)
        except AuthenticationFailed as exc:
            log.info("terms of use refused (client-request-id %s): %s", crid, exc.message)
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                f"Your Entra sign-in could not be verified: {exc.message}. Sign in again; {_ADMIN}.",
                crid,
            )
        except UpstreamUnavailable as exc:
            log.warning("terms of use: Entra signing keys unavailable: %s", exc.message)
            return _error(
                redirect_uri,
                ErrorCode.SERVER_ERROR,
                "The server could not fetch Entra's signing keys to check your sign-in. Try again "
                f"in a few minutes; {_ADMIN}.",
                crid,
            )
        user, oid = identity.username, identity.object_id
        if not user or not oid:
            missing = " and ".join(
                n for n, v in (("user name (upn)", user), ("object id (oid)", oid)) if not v
            )
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                f"The Entra token names no {missing}: sign in with a work or school account of "
                f"your organization. {_RETRY}.",
                crid,
            )
        device = entra_device_id(identity.device_id)
        required = self.requires_end_user_auth(device)
        page = {
            "k": _STATE_KIND,
            "ru": redirect_uri,
            "crid": crid,
            "join": "mode" in params,
            "upn": user,
            "oid": oid,
            "tid": identity.tenant_id,
            "exp": int((now + self._page_lifetime).timestamp()),
            "eua": required,  # this GET's decision, which the POST enforces
        }
        if device is not None:
            page["did"] = device
        if required:
            log.info(
                "terms of use: %s (Entra device %s) signs in with the identity provider first",
                user,
                device or "-",
            )
            pending = _seal(self._state_key, {**page, "k": _PENDING_KIND})
            return Decision(Outcome.SIGN_IN, state=pending, login_hint=user)
        state = _seal(self._state_key, page)
        prompt = Prompt(user=user, tenant_id=identity.tenant_id, join="mode" in params, state=state)
        return Decision(Outcome.SHOW, prompt=prompt)

    # -- end-user authentication: the sign-in with the IdP between the GET and the page -----------

    def begin_sign_in(self, pending: str, *, state: str, code_verifier: str, nonce: str) -> str:
        """The cookie value that carries a check()'s pending state through the IdP sign-in."""
        page = _unseal(self._state_key, pending, _PENDING_KIND)
        if page is None:
            raise ValueError("not a pending terms-of-use state of this server")
        limit = self._clock() + self._sign_in_lifetime
        return _seal(
            self._sign_in_key,
            {
                **page,
                "k": _SIGN_IN_KIND,
                "st": state,
                "cv": code_verifier,
                "n": nonce,
                "sx": min(page["exp"], int(limit.timestamp())),
            },
        )

    def resume_sign_in(self, cookie: str | None) -> PendingSignIn | None:
        """The sign-in a cookie this server sealed carries, unless it expired or was altered.

        The caller still compares the provider's ``state`` with :attr:`PendingSignIn.page`'s.
        """
        claims = _unseal(self._sign_in_key, cookie, _SIGN_IN_KIND)
        if claims is None or self._clock().timestamp() > claims["sx"]:
            return None
        return PendingSignIn(
            redirect_uri=claims["ru"],
            client_request_id=claims["crid"],
            login_hint=claims["upn"],
            code_verifier=claims["cv"],
            nonce=claims["n"],
            page=claims,
        )

    def matches(self, pending: PendingSignIn, state: str | None) -> bool:
        """Whether the provider's ``state`` is the one this sign-in sent (constant time)."""
        if not isinstance(state, str) or not state or len(state) > 256:
            return False
        return hmac.compare_digest(state.encode(), pending.page["st"].encode())

    def signed_in(self, pending: PendingSignIn, username: str) -> Decision:
        """SHOW the terms to a user who signed in with the IdP as ``username``."""
        name = username.strip() if isinstance(username, str) else ""
        if not name or len(name) > 256 or not name.isprintable():
            return _error(
                pending.redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                f"Your organization's sign-in service named a user this server cannot record. {_RETRY}; "
                f"{_ADMIN}.",
                pending.client_request_id,
            )
        claims = pending.page
        page = {k: claims[k] for k in (*_FIELDS[_STATE_KIND], "did", "eua") if k in claims}
        page.update(k=_STATE_KIND, eu=name)
        log.info("terms of use: %s signed in with the identity provider as %s", claims["upn"], name)
        prompt = Prompt(
            user=claims["upn"],
            tenant_id=claims["tid"],
            join=claims["join"],
            state=_seal(self._state_key, page),
            end_user=name,
        )
        return Decision(Outcome.SHOW, prompt=prompt)

    def sign_in_failed(self, pending: PendingSignIn, description: str, *, server: bool = False) -> Decision:
        """The contract's error redirect after the IdP sign-in failed (server_error if ``server``)."""
        code = ErrorCode.SERVER_ERROR if server else ErrorCode.UNAUTHORIZED_CLIENT
        return _error(pending.redirect_uri, code, description, pending.client_request_id)

    # -- POST: the user's answer ------------------------------------------------------------------

    def answer(self, form: Mapping[str, str]) -> Decision:
        """The redirect for the user's Accept or Decline, from the form's signed state."""
        state = _unseal(self._state_key, form.get("state"), _STATE_KIND)
        if state is None:
            return _refuse(
                "This answer did not come from a terms page this server showed, or was altered. "
                f"{_RETRY}; {_ADMIN}."
            )
        redirect_uri, crid = state["ru"], state["crid"]
        now = self._clock()
        if now.timestamp() > state["exp"]:
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                f"The terms page was open for more than {int(self._page_lifetime.total_seconds() // 60)} "
                f"minutes before it was answered. {_RETRY} and answer within that time.",
                crid,
            )
        choice = form.get("answer")
        if choice == "decline":
            # Honoured even in join mode, where no Decline button is shown: a user who declines
            # is never enrolled by winmdm.
            return Decision(
                Outcome.REDIRECT,
                location=_with_query(redirect_uri, [("IsAccepted", "false"), ("client-request-id", crid)]),
            )
        if choice != "accept":
            return _error(
                redirect_uri,
                ErrorCode.INVALID_REQUEST,
                f"The answer must be Accept or Decline. {_RETRY}.",
                crid,
            )
        end_user = state.get("eu")
        # The GET's decision; and the rule for the same device now, should an admin have turned
        # end-user authentication on meanwhile. A state sealed before the decision was carried
        # (no "eua") is asked the rule alone, as then.
        if not end_user and (state.get("eua") or self.requires_end_user_auth(state.get("did"))):
            return _error(
                redirect_uri,
                ErrorCode.UNAUTHORIZED_CLIENT,
                "Your organization requires you to sign in with its identity provider before "
                f"accepting the terms. {_RETRY}.",
                crid,
            )
        issued = int(now.timestamp())
        claims = {
            "k": _BLOB_KIND,
            "upn": state["upn"],
            "oid": state["oid"],
            "tid": state["tid"],
            "crid": crid,
            "iat": issued,
            "exp": issued + int(self._blob_lifetime.total_seconds()),
        }
        if end_user:
            claims["eu"] = end_user
        blob = _seal(self._blob_key, claims)
        log.info(
            "terms of use accepted by %s (tenant %s, client-request-id %s, identity provider user %s)",
            state["upn"],
            state["tid"],
            crid,
            end_user or "-",
        )
        pairs = [("IsAccepted", "true"), ("OpaqueBlob", blob), ("client-request-id", crid)]
        return Decision(Outcome.REDIRECT, location=_with_query(redirect_uri, pairs))

    def server_error(self, params: Mapping[str, str]) -> Decision:
        """The answer after an unexpected failure: server_error to the GET's redirect_uri or the
        POST state's, or a refusal page when neither can be trusted. Never raises."""
        try:
            redirect_uri = valid_redirect_uri(params.get("redirect_uri"))
            crid = _client_request_id(params.get("client-request-id"))
            if redirect_uri is None:
                state = _unseal(self._state_key, params.get("state"), _STATE_KIND)
                if state is not None:
                    redirect_uri, crid = state["ru"], state["crid"]
        except Exception:  # the last resort: never raise from here
            log.exception("terms of use: could not read the request after a failure")
            redirect_uri, crid = None, None
        description = (
            "The server failed while handling the terms of use; the error was logged. Try again in "
            f"a few minutes; {_ADMIN}."
        )
        if redirect_uri is None:
            return _refuse(description)
        return _error(redirect_uri, ErrorCode.SERVER_ERROR, description, crid)

    # -- the enrollment side ----------------------------------------------------------------------

    def read_blob(self, blob: str | None, now: datetime) -> dict[str, Any] | None:
        """What an OpaqueBlob (ContextItem EnrollmentData) proves at ``now``, or None.

        None for anything not signed by this server as a blob, altered, expired, or issued in the
        future. The dict: ``upn``, ``oid``, ``tid``, ``client_request_id``, ``accepted_at``,
        ``expires_at`` (aware datetimes), ``end_user_username`` (who signed in with the IdP under
        end-user authentication, else None).
        """
        claims = _unseal(self._blob_key, blob, _BLOB_KIND)
        if claims is None:
            return None
        clock = now.timestamp()
        if clock > claims["exp"] or clock + _SKEW.total_seconds() < claims["iat"]:
            return None
        return {
            "upn": claims["upn"],
            "oid": claims["oid"],
            "tid": claims["tid"],
            "client_request_id": claims["crid"],
            "accepted_at": datetime.fromtimestamp(claims["iat"], UTC),
            "expires_at": datetime.fromtimestamp(claims["exp"], UTC),
            "end_user_username": claims.get("eu"),
        }


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        return None
    return value


def _seal(key: bytes, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


_PAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "ru": str,
    "crid": str,
    "join": bool,
    "upn": str,
    "oid": str,
    "tid": str,
    "exp": int,
}
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    _STATE_KIND: _PAGE_FIELDS,
    _PENDING_KIND: _PAGE_FIELDS,
    _SIGN_IN_KIND: {**_PAGE_FIELDS, "st": str, "cv": str, "n": str, "sx": int},
    _BLOB_KIND: {"upn": str, "oid": str, "tid": str, "crid": str, "iat": int, "exp": int},
}
_OPTIONAL: dict[str, type] = {
    "eu": str,  # the IdP username, when end-user authentication signed the user in
    "did": str,  # the Entra device id of the GET's token, when it named one
    "eua": bool,  # whether the GET required end-user authentication
}


def _unseal(key: bytes, sealed: object, kind: str) -> dict[str, Any] | None:
    """The payload if ``sealed`` carries this key's MAC and is of ``kind``; times are not checked."""
    if not isinstance(sealed, str) or not sealed or len(sealed) > _MAX_SEALED:
        return None
    body, dot, mac = sealed.partition(".")
    if not dot or not body.isascii() or not mac.isascii():
        return None
    expected = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        return None
    for name, kind_of in _FIELDS[kind].items():
        value = payload.get(name)
        if not isinstance(value, kind_of) or (kind_of is int and isinstance(value, bool)):
            return None
    for name, kind_of in _OPTIONAL.items():
        value = payload.get(name)
        if value is not None and (not isinstance(value, kind_of) or (kind_of is str and not value)):
            return None
    return payload
