"""RFC 7636 PKCE: the appendix B example, and the checks around it."""

from __future__ import annotations

from tillkey.oauth2 import rfc7636

# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_appendix_b_vector() -> None:
    assert rfc7636.challenge_s256(VERIFIER) == CHALLENGE
    assert rfc7636.verify(VERIFIER, CHALLENGE)
    assert rfc7636.valid_challenge(CHALLENGE)


def test_wrong_or_malformed_verifiers_fail() -> None:
    assert not rfc7636.verify(VERIFIER[:-1] + "l", CHALLENGE)
    assert not rfc7636.verify("short", rfc7636.challenge_s256("short"))  # under 43 characters (§4.1)
    too_long = "a" * 129
    assert not rfc7636.verify(too_long, rfc7636.challenge_s256(too_long))
    assert not rfc7636.verify(VERIFIER + "+", rfc7636.challenge_s256(VERIFIER + "+"))  # outside the alphabet
    assert not rfc7636.valid_challenge("plain-text-challenge")


def test_a_verifier_or_challenge_with_a_trailing_newline_is_refused() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert rfc7636.verify(verifier, rfc7636.challenge_s256(verifier))
    assert not rfc7636.verify(verifier + "\n", rfc7636.challenge_s256(verifier + "\n"))
    assert not rfc7636.valid_challenge(rfc7636.challenge_s256(verifier) + "\n")
