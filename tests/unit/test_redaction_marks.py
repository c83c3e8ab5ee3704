"""security/redaction: the substring marks that let redact_credentials skip its regular expression
never skip text the expression would have cut (every credential shape holds one of them)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tillkey.security.redaction import _CREDENTIAL, REDACTED, redact_credentials

SHAPES = [
    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "tk_at_" + "a" * 20,
    "tk_ak_" + "Z-9_" * 5,
    "sk_" + "0123456789abcdef",
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    "Bearer abc.def",
    "bearer\tx",
]
FRAGMENTS = st.sampled_from([*SHAPES, " ", "/", "=", "?q=", "eyJ", "tk_", "sk_", "earer", "$argon", "é", "\n"])


@given(st.lists(st.one_of(FRAGMENTS, st.text(max_size=12)), max_size=8).map("".join))
def test_the_marks_skip_only_text_the_expression_would_leave(text: str) -> None:
    assert redact_credentials(text) == _CREDENTIAL.sub(REDACTED, text)


def test_every_shape_is_cut() -> None:
    for shape in SHAPES:
        assert shape not in redact_credentials(f"before {shape} after")
