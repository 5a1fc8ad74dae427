"""The terms-of-use rules (protocol.md §6), called directly with real RS256 tokens from a local
Entra stand-in: what is shown, where each answer and error goes, and what an OpaqueBlob proves."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.services.conftest import SERVER, TENANT, Clock
from tests.support.entra_issuer import EntraIssuer
from winmdm.errors import AuthenticationFailed
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.services.terms import (
    BLOB_LIFETIME,
    PAGE_LIFETIME,
    Decision,
    ErrorCode,
    Outcome,
    TermsOfUse,
    valid_redirect_uri,
)

KEY = b"k" * 32
REDIRECT = "ms-appx-web://Microsoft.AAD.BrokerPlugin/ToUResponse"
OTHER_TENANT = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


@pytest.fixture
def verifier(entra: EntraIssuer) -> EntraVerifier:
    return EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url))


@pytest.fixture
def terms(verifier: EntraVerifier, clock: Clock) -> TermsOfUse:
    return TermsOfUse(verifier, clock, KEY)


@pytest.fixture
def crid() -> str:
    return str(uuid.uuid4())


def params(crid: str, **changes: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "redirect_uri": REDIRECT,
        "client-request-id": crid,
        "api-version": "1.0",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> str:
    return f"Bearer {token}"


def answer_of(decision: Decision, redirect: str = REDIRECT) -> dict[str, str]:
    """The query Windows reads off the redirect, one value per name."""
    assert decision.outcome is Outcome.REDIRECT, decision
    assert decision.location is not None
    assert decision.location.startswith(redirect + "?")
    query = parse_qs(urlsplit(decision.location).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in query.values()), query
    return {k: v[0] for k, v in query.items()}


def shown(terms: TermsOfUse, token: str, crid: str, **changes: str | None) -> str:
    decision = terms.check(bearer(token), params(crid, **changes))
    assert decision.outcome is Outcome.SHOW, decision
    assert decision.prompt is not None
    return decision.prompt.state


def assert_error(decision: Decision, code: ErrorCode, crid: str | None, *words: str) -> str:
    answer = answer_of(decision)
    assert answer["error"] == code.value
    assert decision.error is code
    assert "IsAccepted" not in answer and "OpaqueBlob" not in answer
    if crid is None:
        assert "client-request-id" not in answer
    else:
        assert answer["client-request-id"] == crid
    description = answer["error_description"]
    for word in words:
        assert word in description, description
    # URL-encoded English: %20 for spaces, never a raw space or "+".
    assert " " not in decision.location and "+" not in decision.location
    return description


def _tamper(sealed: str, **changes) -> str:
    body, mac = sealed.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + mac


# -- accept, decline, join mode -------------------------------------------------------------------


def test_accept_redirects_with_a_blob_naming_the_user(terms, token, crid, clock, entra) -> None:
    raw = token(upn="alice@corp.example")
    decision = terms.check(bearer(raw), params(crid))
    assert decision.outcome is Outcome.SHOW
    assert decision.prompt.user == "alice@corp.example"
    assert decision.prompt.tenant_id == TENANT
    assert decision.prompt.join is False

    answer = answer_of(terms.answer({"state": decision.prompt.state, "answer": "accept"}))
    assert answer["IsAccepted"] == "true"
    assert answer["client-request-id"] == crid
    blob = terms.read_blob(answer["OpaqueBlob"], clock.now)
    oid = entra.claims(tenant_id=TENANT, audience=SERVER, upn="alice@corp.example")["oid"]
    assert blob is not None
    assert blob["upn"] == "alice@corp.example"
    assert blob["oid"] == oid
    assert blob["tid"] == TENANT
    assert blob["client_request_id"] == crid
    assert blob["expires_at"] - blob["accepted_at"] == BLOB_LIFETIME


def test_decline_redirects_without_a_blob(terms, token, crid) -> None:
    state = shown(terms, token(), crid)
    answer = answer_of(terms.answer({"state": state, "answer": "decline"}))
    assert answer == {"IsAccepted": "false", "client-request-id": crid}


def test_mode_marks_an_entra_join_where_decline_is_not_offered(terms, token, crid) -> None:
    joined = terms.check(bearer(token()), params(crid, mode="azureadjoin"))
    assert joined.prompt is not None and joined.prompt.join is True


def test_answer_is_appended_to_a_redirect_uri_that_has_a_query(terms, token, crid) -> None:
    redirect = REDIRECT + "?flow=oobe"
    state = shown(terms, token(), crid, redirect_uri=redirect)
    decision = terms.answer({"state": state, "answer": "accept"})
    assert decision.location.startswith(redirect + "&IsAccepted=true&OpaqueBlob=")


def test_a_token_without_scope_is_enough_for_the_terms_but_not_for_enrollment(
    terms, verifier, token, crid, clock
) -> None:
    raw = token(drop_claims=["scp"])
    shown(terms, raw, crid)
    with pytest.raises(AuthenticationFailed, match="mdm_delegation"):
        verifier.verify(raw, clock.now)


def test_a_v1_token_is_accepted(terms, token, crid) -> None:
    shown(terms, token(version="1.0"), crid)


# -- refusals without a redirect -----------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect",
    [
        None,
        "",
        "https://evil.example/collect",
        "http://127.0.0.1/",
        "javascript:alert(1)",
        "ms-app://windows.immersivecontrolpanel",
        "ms-appx-web:///no-host",
        "ms-appx-web://app/path#fragment",
        "ms-appx-web://app/a b",
        "ms-appx-web://app/\r\nSet-Cookie: x=1",
        'ms-appx-web://app/"><script>alert(1)</script>',
        "ms-appx-web://app/\u00e9",
        "ms-appx-web://app/" + "a" * 3000,
    ],
)
def test_a_redirect_uri_that_is_not_ms_appx_web_is_refused_without_redirect(
    terms, token, crid, redirect
) -> None:
    decision = terms.check(bearer(token()), params(crid, redirect_uri=redirect))
    assert decision.outcome is Outcome.REFUSE
    assert decision.location is None
    assert "ms-appx-web://" in decision.message


def test_the_scheme_is_compared_without_case() -> None:
    assert valid_redirect_uri("MS-APPX-WEB://Microsoft.AAD.BrokerPlugin/x") is not None


# -- error redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "", "2.0", "1"])
def test_an_unsupported_api_version_is_invalid_request(terms, token, crid, version) -> None:
    decision = terms.check(bearer(token()), params(crid, **{"api-version": version}))
    assert_error(decision, ErrorCode.INVALID_REQUEST, crid, "api-version 1.0")


@pytest.mark.parametrize("bad", [None, "", "not-a-guid", "'; drop table hosts; --"])
def test_a_missing_or_malformed_client_request_id_is_invalid_request(terms, token, bad) -> None:
    decision = terms.check(bearer(token()), params(str(uuid.uuid4()), **{"client-request-id": bad}))
    assert_error(decision, ErrorCode.INVALID_REQUEST, None, "client-request-id")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer a b"])
def test_a_missing_bearer_token_is_unauthorized_client(terms, crid, header) -> None:
    decision = terms.check(header, params(crid))
    assert_error(decision, ErrorCode.UNAUTHORIZED_CLIENT, crid, "Bearer")


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("other tenant", "not allowed"),
        ("other audience", "audience"),
        ("expired", "expired"),
        ("stranger key", "signature"),
        ("garbage", "not a JWT"),
        ("no user", "user name"),
        ("no oid", "object id"),
    ],
)
def test_a_token_that_fails_validation_is_unauthorized_client(
    terms, token, entra, crid, clock, case, words
) -> None:
    raw = {
        "other tenant": lambda: token(tenant_id=OTHER_TENANT),
        "other audience": lambda: token(audience="https://other.example"),
        "expired": lambda: token(issued_at=clock.now - timedelta(hours=3)),
        "stranger key": lambda: entra.token_signed_by_stranger(tenant_id=TENANT, audience=SERVER),
        "garbage": lambda: "abc.def.ghi",
        "no user": lambda: token(upn=None),
        "no oid": lambda: token(drop_claims=["oid"]),
    }[case]()
    description = assert_error(
        terms.check(bearer(raw), params(crid)), ErrorCode.UNAUTHORIZED_CLIENT, crid, words
    )
    assert raw not in description


def test_entra_not_configured_is_unauthorized_client_naming_the_setting(token, crid, clock) -> None:
    terms = TermsOfUse(None, clock, KEY)
    decision = terms.check(bearer(token()), params(crid))
    assert_error(decision, ErrorCode.UNAUTHORIZED_CLIENT, crid, "WINMDM_ENTRA_TENANT_IDS")


def test_entra_keys_out_of_reach_is_server_error(token, crid, clock) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = EntraVerifier([TENANT], [SERVER], JWKSCache(f"http://127.0.0.1:{port}/keys"))
    decision = TermsOfUse(verifier, clock, KEY).check(bearer(token()), params(crid))
    assert_error(decision, ErrorCode.SERVER_ERROR, crid, "signing keys", "Try again")


def test_server_error_goes_to_the_get_redirect_or_the_post_state(terms, token, crid) -> None:
    get = terms.server_error(params(crid))
    assert_error(get, ErrorCode.SERVER_ERROR, crid, "error was logged")
    state = shown(terms, token(), crid, redirect_uri=REDIRECT + "/post")
    post = terms.server_error({"state": state, "answer": "accept"})
    assert answer_of(post, REDIRECT + "/post")["error"] == "server_error"
    for untrusted in (
        {},
        {"redirect_uri": "https://evil.example/"},
        {"state": _tamper(state, upn="mallory@corp.example")},
    ):
        refused = terms.server_error(untrusted)
        assert refused.outcome is Outcome.REFUSE and refused.location is None


# -- the answer's state -------------------------------------------------------------------------


def test_an_altered_state_is_refused_without_redirect(terms, token, crid) -> None:
    state = shown(terms, token(), crid)
    body, mac = state.split(".")
    forged = [
        _tamper(state, ru="https://evil.example/collect"),
        _tamper(state, upn="mallory@corp.example"),
        body + "." + ("A" if mac[0] != "A" else "B") + mac[1:],
        body + "." + mac + "A",
        state + ".x",
        "",
        "garbage",
    ]
    for value in forged:
        decision = terms.answer({"state": value, "answer": "accept"})
        assert decision.outcome is Outcome.REFUSE, value
        assert decision.location is None
    assert terms.answer({"answer": "accept"}).outcome is Outcome.REFUSE


def test_a_state_signed_with_another_key_is_refused(token, verifier, clock, crid) -> None:
    state = shown(TermsOfUse(verifier, clock, b"o" * 32), token(), crid)
    decision = TermsOfUse(verifier, clock, KEY).answer({"state": state, "answer": "accept"})
    assert decision.outcome is Outcome.REFUSE


def test_an_expired_state_redirects_an_error(terms, token, crid, clock) -> None:
    state = shown(terms, token(), crid)
    clock.advance(PAGE_LIFETIME + timedelta(seconds=1))
    assert_error(
        terms.answer({"state": state, "answer": "accept"}),
        ErrorCode.UNAUTHORIZED_CLIENT,
        crid,
        "30 minutes",
    )


@pytest.mark.parametrize("choice", [None, "", "yes", "ACCEPT"])
def test_an_answer_that_is_neither_accept_nor_decline_is_invalid_request(terms, token, crid, choice) -> None:
    state = shown(terms, token(), crid)
    form = {"state": state} if choice is None else {"state": state, "answer": choice}
    assert_error(terms.answer(form), ErrorCode.INVALID_REQUEST, crid, "Accept or Decline")


# -- the blob ----------------------------------------------------------------------------------


@pytest.fixture
def blob(terms, token, crid) -> str:
    state = shown(terms, token(), crid)
    return answer_of(terms.answer({"state": state, "answer": "accept"}))["OpaqueBlob"]


def test_a_blob_is_read_until_it_expires(terms, blob, clock) -> None:
    clock.advance(BLOB_LIFETIME)
    assert terms.read_blob(blob, clock.now) is not None
    clock.advance(timedelta(seconds=1))
    assert terms.read_blob(blob, clock.now) is None


def test_a_blob_from_the_future_is_refused(terms, blob, clock) -> None:
    assert terms.read_blob(blob, clock.now - timedelta(minutes=10)) is None


def test_a_tampered_blob_is_refused(terms, blob, clock, verifier) -> None:
    body, mac = blob.split(".")
    assert terms.read_blob(blob, clock.now) is not None
    for value in [
        _tamper(blob, upn="mallory@corp.example"),
        _tamper(blob, exp=2**40),
        _tamper(blob, tid=OTHER_TENANT),
        body + "." + ("A" if mac[0] != "A" else "B") + mac[1:],
        body + "." + mac[:-1],
        body + "=." + mac,
        body,
        "",
        None,
        "x" * 10_000,
        "\u00e9.\u00e9",
    ]:
        assert terms.read_blob(value, clock.now) is None, value
    assert TermsOfUse(verifier, clock, b"o" * 32).read_blob(blob, clock.now) is None


def test_a_page_state_is_not_a_blob(terms, token, crid, clock) -> None:
    state = shown(terms, token(), crid)
    assert terms.read_blob(state, clock.now) is None


def test_a_short_signing_key_is_refused(verifier, clock) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TermsOfUse(verifier, clock, b"short")


# -- end-user authentication per device (the rule itself: tests/services/test_end_user_auth.py) --

DEVICE = "2f6a4c1e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
OTHER_DEVICE = "7d8e9f00-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


class Rule:
    """Stands in for services/end_user_auth.py: known devices by id, any other one No team's."""

    def __init__(self, no_team: bool, known: dict[str, bool]) -> None:
        self.no_team = no_team
        self.known = dict(known)
        self.asked: list[str | None] = []

    def __call__(self, device_id: str | None) -> bool:
        self.asked.append(device_id)
        return self.known.get(device_id, self.no_team) if device_id else self.no_team


def per_device(verifier, clock, rule: Rule) -> TermsOfUse:
    return TermsOfUse(verifier, clock, KEY, end_user_auth=True, device_end_user_auth=rule)


def test_the_tokens_entra_device_id_decides_at_the_get(verifier, clock, token, crid) -> None:
    rule = Rule(no_team=False, known={DEVICE: True})
    terms = per_device(verifier, clock, rule)  # end_user_auth=True is not asked: the rule is
    signing = terms.check(bearer(token(device_id=DEVICE.upper())), params(crid))
    assert signing.outcome is Outcome.SIGN_IN and signing.login_hint == "alice@corp.example"
    assert terms.check(bearer(token(device_id=OTHER_DEVICE)), params(crid)).outcome is Outcome.SHOW
    assert terms.check(bearer(token()), params(crid)).outcome is Outcome.SHOW
    assert terms.check(bearer(token(device_id="x" * 200)), params(crid)).outcome is Outcome.SHOW
    assert rule.asked == [DEVICE, OTHER_DEVICE, None, None]  # canonical, and nonsense is no id
    assert terms.end_user_auth is False  # No team's


def test_a_device_whose_team_does_not_require_it_accepts_while_no_team_does(
    verifier, clock, token, crid
) -> None:
    """The POST carries no token: it must not fall back to No team's rule for a known PC."""
    rule = Rule(no_team=True, known={DEVICE: False})
    terms = per_device(verifier, clock, rule)
    assert terms.check(bearer(token()), params(crid)).outcome is Outcome.SIGN_IN  # a new PC
    state = shown(terms, token(device_id=DEVICE), crid)
    answer = answer_of(terms.answer({"state": state, "answer": "accept"}))
    assert answer["IsAccepted"] == "true"
    blob = terms.read_blob(answer["OpaqueBlob"], clock.now)
    assert blob is not None and blob["end_user_username"] is None
    assert rule.asked == [None, DEVICE, DEVICE]  # the POST asked about the GET's device


def test_a_known_device_signs_in_and_the_sign_in_keeps_the_gets_decision(
    verifier, clock, token, crid
) -> None:
    rule = Rule(no_team=False, known={DEVICE: True})
    terms = per_device(verifier, clock, rule)
    decision = terms.check(bearer(token(device_id=DEVICE)), params(crid, mode="azureadjoin"))
    assert decision.outcome is Outcome.SIGN_IN and decision.state is not None
    cookie = terms.begin_sign_in(decision.state, state="st-1", code_verifier="cv", nonce="n-1")
    pending = terms.resume_sign_in(cookie)
    assert pending is not None and terms.matches(pending, "st-1")
    rule.known[DEVICE] = False  # an admin turned it off meanwhile: the signed-in user still may accept
    page = terms.signed_in(pending, "bob@corp.example")
    assert page.outcome is Outcome.SHOW and page.prompt.end_user == "bob@corp.example"
    assert page.prompt.join is True
    answer = answer_of(terms.answer({"state": page.prompt.state, "answer": "accept"}))
    blob = terms.read_blob(answer["OpaqueBlob"], clock.now)
    assert (blob["upn"], blob["end_user_username"]) == ("alice@corp.example", "bob@corp.example")


def test_the_gets_decision_is_enforced_and_a_stricter_rule_since_too(verifier, clock, token, crid) -> None:
    rule = Rule(no_team=False, known={DEVICE: False})
    terms = per_device(verifier, clock, rule)
    state = shown(terms, token(device_id=DEVICE), crid)
    rule.known[DEVICE] = True  # the PC was moved to a team that requires it
    assert_error(
        terms.answer({"state": state, "answer": "accept"}),
        ErrorCode.UNAUTHORIZED_CLIENT,
        crid,
        "sign in with its identity provider",
    )
    # Declining needs no sign-in.
    assert answer_of(terms.answer({"state": state, "answer": "decline"}))["IsAccepted"] == "false"


def test_the_decision_and_the_device_in_the_state_cannot_be_altered(verifier, clock, token, crid) -> None:
    terms = per_device(verifier, clock, Rule(no_team=False, known={DEVICE: True, OTHER_DEVICE: False}))
    state = shown(terms, token(device_id=OTHER_DEVICE), crid)
    for forged in (_tamper(state, eua=False, did=DEVICE), _tamper(state, did=None), _tamper(state, eua="no")):
        assert terms.answer({"state": forged, "answer": "accept"}).outcome is Outcome.REFUSE


def test_a_state_sealed_before_the_decision_was_carried_follows_no_team(verifier, clock, token, crid) -> None:
    """A page shown by an instance not yet upgraded (no "eua", no "did") during a rolling update."""
    from winmdm.services import terms as terms_module

    terms = per_device(verifier, clock, Rule(no_team=True, known={}))
    state = terms.check(bearer(token()), params(crid)).state  # SIGN_IN: the pending state
    assert state is not None
    encoded = state.split(".")[0]
    body = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    old = {k: v for k, v in body.items() if k not in ("eua", "did")} | {"k": "tou-page"}
    sealed = terms_module._seal(terms._state_key, old)
    assert_error(
        terms.answer({"state": sealed, "answer": "accept"}),
        ErrorCode.UNAUTHORIZED_CLIENT,
        crid,
        "sign in with its identity provider",
    )
    relaxed = per_device(verifier, clock, Rule(no_team=False, known={}))
    assert answer_of(relaxed.answer({"state": sealed, "answer": "accept"}))["IsAccepted"] == "true"
