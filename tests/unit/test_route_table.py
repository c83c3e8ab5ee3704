"""The forward-auth route table in isolation: pattern semantics, first match, path normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tillkey.access.route_table import (
    MAX_SEGMENTS,
    BadTarget,
    RouteRule,
    RouteTable,
    _steps,
    build,
    normalize,
    normalize_method,
)
from tillkey.access.tree import ResourceTree

TREE = ResourceTree.load()


def table(*rules: dict[str, object]) -> RouteTable:
    return RouteTable.compile([RouteRule.model_validate(r) for r in rules], TREE)


def test_wildcards_are_whole_segments() -> None:
    t = table(
        {"path": "/api/orders/*", "resources": ["Magento_Sales::actions_view"]},
        {"path": "/api/**", "resources": ["Magento_Catalog::products"]},
        {"path": "/", "resources": ["anonymous"]},
    )

    def index(path: str) -> int | None:
        found = t.match("GET", path)
        return None if found is None else found.index

    assert index("/api/orders/7") == 0
    assert index("/api/orders") == 1  # * needs a segment; ** takes the rest
    assert index("/api/orders/7/items") == 1
    assert index("/api") == 1
    assert index("/apis") is None
    assert index("/") == 2
    assert index("/other") is None


def test_first_match_wins_and_methods_select() -> None:
    t = table(
        {"methods": ["get"], "path": "/p/**", "resources": ["anonymous"]},
        {"methods": ["POST"], "path": "/p/**", "resources": ["Magento_Backend::all"]},
        {"path": "/p/**", "resources": ["Magento_Catalog::products"]},
    )

    def needs(method: str) -> tuple[str, ...] | None:
        found = t.match(method, "/p/x")
        return None if found is None else found.resources

    assert needs("GET") == needs("HEAD") == ("anonymous",)
    assert needs("POST") == ("Magento_Backend::all",)
    assert needs("PATCH") == ("Magento_Catalog::products",)


def test_literal_segments_are_not_patterns() -> None:
    t = table({"path": "/a.b/(x)", "resources": ["anonymous"]})
    assert t.match("GET", "/a.b/(x)") is not None
    assert t.match("GET", "/aXb/(x)") is None


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ({"path": "api", "resources": ["anonymous"]}, "must start with /"),
        ({"path": "/a/**/b", "resources": ["anonymous"]}, "last segment"),
        ({"path": "/a*", "resources": ["anonymous"]}, "whole segment"),
        ({"path": "/a/../b", "resources": ["anonymous"]}, "no . or .."),
        ({"path": "/a", "resources": []}, "at least 1"),
        ({"path": "/a", "resources": ["anonymous"], "methods": ["GE T"]}, "not an HTTP method"),
        ({"path": "/a", "resources": ["anonymous"], "method": ["GET"]}, "Extra inputs"),
    ],
)
def test_bad_rules_are_refused(rule: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        RouteRule.model_validate(rule)


def test_unknown_resources_are_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match=r"route 1 \(/b\): unknown resource id\(s\) Nope::x"):
        table({"path": "/a", "resources": ["self"]}, {"path": "/b", "resources": ["admin_self", "Nope::x"]})


def test_route_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "routes.toml"
    toml.write_text('[[route]]\npath = "/a/**"\nmethods = ["GET"]\nresources = ["anonymous"]\n')
    assert build((), toml, TREE).match("GET", "/a/b") is not None
    js = tmp_path / "routes.json"
    js.write_text('[{"path": "/a", "resources": ["self"]}]')
    assert build((), js, TREE).match("PUT", "/a") is not None
    js.write_text('[{"path": "/a"}]')
    with pytest.raises(ValueError, match=r"routes\.json is not valid"):
        build((), js, TREE)
    with pytest.raises(ValueError, match="cannot read"):
        build((), tmp_path / "missing.toml", TREE)


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/a/b?x=1", "/a/b"),
        ("/a/b/", "/a/b"),
        ("//a///b", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/public/..%2Fadmin", "/admin"),
        ("/a/%2e%2e/x", "/x"),
        ("/caf%C3%A9", "/café"),
        ("https://shop.example.com/a?b", "/a"),
        ("http://shop.example.com", "/"),
        ("http://shop.example.com?a=/b", "/"),
        ("/a#frag", "/a"),
        ("/", "/"),
        ("/admin;x=1/s", "/admin/s"),
        ("/admin./s", "/admin/s"),
        ("/admin%20/s", "/admin/s"),
        ("/a/..;/b", "/b"),
        ("/%EF%BD%81", "/a"),
    ],
)
def test_paths_are_normalised_as_a_proxy_routes_them(uri: str, path: str) -> None:
    assert normalize(uri) == path


@pytest.mark.parametrize(
    "uri",
    ["", "a/b", "/..", "/a/../..", "/a%00", "/a%0d%0ab", "/%ff", "/a\\b", "/a%5cb", "/..%252F", "/...", "/a" * 65],
)
def test_unusable_uris_are_refused(uri: str) -> None:
    with pytest.raises(BadTarget):
        normalize(uri)


def test_methods() -> None:
    assert normalize_method("delete") == "DELETE"
    for bad in ("", "GET ", "G\x00T", "X" * 21):
        with pytest.raises(BadTarget):
            normalize_method(bad)


@settings(max_examples=800, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="/aZ09-_~.;% \\é\x00", max_size=24),
        st.from_regex(r"(/[a-zA-Z0-9._~-]{0,4}){1,6}", fullmatch=True),
    )
)
def test_plain_paths_take_a_shortcut_to_the_same_answer(uri: str) -> None:
    """normalize() returns a path that needs no step unchanged, without the steps: the answer (or
    the refusal) must be the one the steps give."""
    try:
        expected: str | type[BadTarget] = _steps(uri, MAX_SEGMENTS)
    except BadTarget:
        expected = BadTarget
    try:
        got: str | type[BadTarget] = normalize(uri)
    except BadTarget:
        got = BadTarget
    assert got == expected


def test_plain_paths_keep_the_segment_cap() -> None:
    assert normalize("/a" * 64) == "/a" * 64
    with pytest.raises(BadTarget):
        normalize("/a" * 65)
    assert normalize("/rest/V1/products/24-MB01") == "/rest/V1/products/24-MB01"
    assert normalize("/static/app.min.js") == "/static/app.min.js"
