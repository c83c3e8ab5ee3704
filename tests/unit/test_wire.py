"""Magento wire helpers and bearer parsing."""

from __future__ import annotations

from tillkey.credentials.bearer import bearer_token
from tillkey.errors import InvalidRequest
from tillkey.surfaces.magento_wire import encode, error_body


def test_php_json_encoding() -> None:
    assert encode({"a": "x/y", "b": "é"}) == b'{"a":"x\\/y","b":"\\u00e9"}'
    assert encode("tok") == b'"tok"'
    assert encode(True) == b"true"


def test_error_envelope_shapes() -> None:
    assert error_body(InvalidRequest("Decoding error.")) == {"message": "Decoding error."}
    one = InvalidRequest("m %x", parameters={"x": 1})
    assert error_body(one) == {"message": "m %x", "parameters": {"x": 1}}
    both = InvalidRequest("first", errors=[InvalidRequest("a"), InvalidRequest("b", parameters=["p"])])
    assert error_body(both) == {
        "message": "One or more input exceptions have occurred.",
        "errors": [{"message": "a"}, {"message": "b", "parameters": ["p"]}],
    }


def test_bearer_parsing_matches_magento() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"
    for bad in [None, "", "Bearer", "Bearer ", "Bearer  abc", "Basic abc", "Bearer a b"]:
        assert bearer_token(bad) is None
