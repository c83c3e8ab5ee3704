"""oauth1/rfc5849.py: which parameters are signed (RFC 5849 §3.4.1 example), Magento's natural order,
and the protocol checks that come before any secret."""

from __future__ import annotations

import pytest

from tillkey.errors import InvalidRequest
from tillkey.oauth1 import rfc5849

# RFC 5849 §3.4.1.1: the example request and its signature base string, verbatim.
RFC_HEADER = (
    'OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", '
    'oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", '
    'oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"'
)
RFC_BASE = (
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D"
    "%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1"
    "%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
)


def test_rfc_5849_example_base_string() -> None:
    req = rfc5849.parse(
        "post", "http://example.com/request", RFC_HEADER, "b5=%3D%253D&a3=a&c%40=&a2=r%20b", "c2&a3=2+q"
    )
    assert rfc5849.base_strings(req)[0] == RFC_BASE
    assert req.oauth["oauth_signature"] == "bYT5CMsGcbgUdFHObYMEfcx6bsw="
    assert ("realm", "Example") not in req.params


def test_natural_order_is_phps_strnatcmp() -> None:
    params = [("f10", "a"), ("f9", "b"), ("a", "1"), ("f9", "10"), ("f9", "9"), ("F1", "x")]
    assert rfc5849.natural_normalized(params) == "F1=x&a=1&f9=9&f9=10&f9=b&f10=a"


def test_magento_merges_one_value_per_name() -> None:
    header = 'OAuth oauth_consumer_key="k", oauth_verifier="v1"'
    req = rfc5849.parse("POST", "http://shop/x", header, "q=1", "oauth_verifier=v1&q=2")
    assert sorted(req.params) == [
        ("oauth_consumer_key", "k"),
        ("oauth_verifier", "v1"),
        ("oauth_verifier", "v1"),
        ("q", "1"),
        ("q", "2"),
    ]
    assert dict(req.merged) == {"oauth_consumer_key": "k", "oauth_verifier": "v1", "q": "1"}  # query wins


def _signed(**oauth: str) -> rfc5849.SignedRequest:
    fields = {
        "oauth_consumer_key": "k" * 32,
        "oauth_token": "t" * 32,
        "oauth_signature_method": "HMAC-SHA256",
        "oauth_nonce": "n",
        "oauth_timestamp": "1000",
        "oauth_signature": "s",
        **oauth,
    }
    header = "OAuth " + ", ".join(f'{k}="{v}"' for k, v in fields.items() if v)
    return rfc5849.parse("GET", "http://shop/rest/V1/products", header)


def _check(req: rfc5849.SignedRequest, allow_sha1: bool = False) -> None:
    rfc5849.check_protocol(req, now=1000, required=["oauth_token"], allow_sha1=allow_sha1, max_age=600)


@pytest.mark.parametrize(
    ("oauth", "message"),
    [
        ({"oauth_timestamp": "1601"}, rfc5849.BAD_NONCE),  # more than 600 s ahead
        ({"oauth_timestamp": "399"}, rfc5849.BAD_NONCE),  # older than the nonces kept
        ({"oauth_timestamp": "12abc"}, rfc5849.BAD_NONCE),
        ({"oauth_version": "2.0"}, rfc5849.BAD_VERSION),
        ({"oauth_consumer_key": "short"}, rfc5849.KEY_LENGTH),
        ({"oauth_token": "t" * 31}, rfc5849.TOKEN_LENGTH_INVALID),
        ({"oauth_nonce": "n" * 129}, rfc5849.BAD_NONCE),
    ],
)
def test_protocol_refusals(oauth: dict[str, str], message: str) -> None:
    with pytest.raises(rfc5849.SignatureRefused) as caught:
        _check(_signed(**oauth))
    assert caught.value.message == message
    assert caught.value.status_code == 401 and caught.value.tell_client


def test_accepted_timestamps() -> None:
    for ts in ("1600", "400", "1000"):
        _check(_signed(oauth_timestamp=ts))


def test_missing_parameters_are_aggregated_400s() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _check(_signed(oauth_nonce="", oauth_token=""))
    assert [e.parameters for e in caught.value.errors] == [{"fieldName": "oauth_nonce"}, {"fieldName": "oauth_token"}]


def test_sha1_only_when_allowed() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _check(_signed(oauth_signature_method="HMAC-SHA1"))
    assert caught.value.parameters == ["HMAC-SHA1"]
    _check(_signed(oauth_signature_method="HMAC-SHA1"), allow_sha1=True)
    with pytest.raises(InvalidRequest):
        _check(_signed(oauth_signature_method="PLAINTEXT"), allow_sha1=True)
