"""OMA-DM MD5 digest checks (protocol/digest.py) against whatever text a client sends."""

from __future__ import annotations

from winmdm.protocol import digest


def test_a_matching_cred_matches_and_others_do_not() -> None:
    credential = digest.credential_hash("device", "secret")
    presented = digest.digest(credential, b"nonce")
    assert digest.matches(credential, b"nonce", presented)
    assert digest.matches(credential, b"nonce", f"  {presented}\n")
    assert not digest.matches(credential, b"other", presented)


def test_a_non_ascii_cred_is_a_wrong_cred() -> None:
    """Found by the fuzzer: comparing str with non-ASCII text was a TypeError (a 500)."""
    credential = digest.credential_hash("device", "secret")
    assert not digest.matches(credential, b"nonce", "é" * 24)
