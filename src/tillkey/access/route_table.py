"""The forward-auth route table: which resources a request to a proxied app needs, by method and path.

Routes are data (as web/routing.py declares Tillkey's own): an ordered list of rules read from
the settings, compiled once at start into regular expressions; the first rule whose method and path
match gives the resources, and no match is a denial. Paths are matched after the normalisation a
proxy applies before it routes (percent-decoding, dot segments, repeated slashes), so a spelling
such as `/public/..%2Fadmin` is judged as `/admin`, the path the proxy actually serves; and the
readings an app behind it may add (path parameters, case, trailing dots) are judged as the path
they would reach, or refused (see normalize()).
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from tillkey.access.tree import SPECIAL, ResourceTree

_METHOD = re.compile(r"[A-Za-z]{1,20}")
# Control characters (and DEL) have no business in a path; a NUL could cut it short downstream.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ANY_METHOD = "*"


class RouteRule(BaseModel):
    """One entry of TILLKEY_FORWARD_AUTH_ROUTES: `path` pattern, optional `methods`, `resources`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, max_length=2048)
    # Empty (or ["*"]): every method.
    methods: tuple[str, ...] = ()
    resources: tuple[str, ...] = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"path pattern {v!r} must start with /")
        segments = v.strip("/").split("/") if v != "/" else []
        for i, seg in enumerate(segments):
            if seg == "**" and i != len(segments) - 1:
                raise ValueError(f"path pattern {v!r}: ** may only be the last segment")
            if "*" in seg and seg not in ("*", "**"):
                raise ValueError(f"path pattern {v!r}: a wildcard must be a whole segment (* or **)")
            if seg in (".", ".."):
                raise ValueError(f"path pattern {v!r}: no . or .. segments")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if ANY_METHOD in v:
            return ()
        for m in v:
            if not _METHOD.fullmatch(m):
                raise ValueError(f"method {m!r} is not an HTTP method")
        upper = tuple(dict.fromkeys(m.upper() for m in v))
        # HEAD is GET without the body; a rule for GET that refused HEAD would only surprise.
        return (*upper, "HEAD") if "GET" in upper and "HEAD" not in upper else upper


_RULES = TypeAdapter(tuple[RouteRule, ...])


def load_rules_file(path: Path) -> tuple[RouteRule, ...]:
    """A TOML file with `[[route]]` tables, or a JSON file holding the list (by extension)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the forward-auth route file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text).get("route", [])
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the forward-auth route file {path} is not valid: {exc}") from None
    try:
        return _RULES.validate_python(data)
    except ValidationError as exc:
        raise ValueError(f"the forward-auth route file {path} is not valid: {exc}") from None


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    index: int
    pattern: str
    methods: frozenset[str]  # empty: any
    regex: re.Pattern[str]
    resources: tuple[str, ...]


def _regex(pattern: str) -> re.Pattern[str]:
    # Trailing slashes never matter: normalize() strips them from requests too.
    segments = [s for s in pattern.split("/") if s]
    out = ""
    for seg in segments:
        if seg == "**":
            out += "(?:/.*)?"
        elif seg == "*":
            out += "/[^/]+"
        else:
            out += "/" + re.escape(seg)
    # Case-insensitive: an app that folds case serves /ADMIN as /admin (normalize()).
    return re.compile(out or "/", re.IGNORECASE)


class RouteTable:
    """Compiled once at start; `match` is a scan of precompiled patterns, no parsing per request."""

    def __init__(self, routes: Sequence[CompiledRoute]) -> None:
        self.routes = tuple(routes)

    @classmethod
    def compile(cls, rules: Sequence[RouteRule], tree: ResourceTree) -> RouteTable:
        routes = []
        for i, rule in enumerate(rules):
            unknown = [r for r in tree.unknown(rule.resources) if r not in SPECIAL]
            if unknown:
                raise ValueError(
                    f"forward-auth route {i} ({rule.path}): unknown resource id(s) {', '.join(unknown)}; "
                    "see `tillkey role resources` for the tree"
                )
            routes.append(CompiledRoute(i, rule.path, frozenset(rule.methods), _regex(rule.path), rule.resources))
        return cls(routes)

    def match(self, method: str, path: str) -> CompiledRoute | None:
        """The first route for this method and normalized path, or None."""
        for route in self.routes:
            if (not route.methods or method in route.methods) and route.regex.fullmatch(path):
                return route
        return None


def build(rules: Sequence[RouteRule], rules_file: Path | None, tree: ResourceTree) -> RouteTable:
    """The table from the settings (inline rules, or the file); raises ValueError with the reason."""
    return RouteTable.compile(load_rules_file(rules_file) if rules_file else rules, tree)


class BadTarget(ValueError):
    """The original request's method or URI cannot be judged (the proxy would not route it either)."""


def normalize_method(raw: str) -> str:
    if not _METHOD.fullmatch(raw):
        raise BadTarget("the original method is not an HTTP method")
    return raw.upper()


def origin_form(raw_uri: str) -> str:
    """Path and query of a request target, without a fragment; an absolute-form target
    (RFC 9112 §3.2.2, `http://host/path?q`) loses its scheme and authority."""
    uri = raw_uri.split("#", 1)[0]
    if uri.startswith(("http://", "https://")):
        rest = uri.split("://", 1)[1]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        uri = rest[cut:]
        uri = uri if uri.startswith("/") else "/" + uri
    return uri


MAX_URI_LENGTH = 4096
MAX_SEGMENTS = 64
# A percent-encoded triplet left after the one decoding a proxy does: some app decodes it again.
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
# A path every step of normalize() leaves as it is: ASCII letters, digits, - _ ~ and dots inside
# segments only (no segment that is or ends in dots, so no dot segments and nothing to trim), no
# empty segment (no repeated or trailing slash), nothing to decode, fold, cut at ; or refuse.
_PLAIN = re.compile(r"(?:/[A-Za-z0-9_~-]+(?:\.+[A-Za-z0-9_~-]+)*)+")


def normalize(raw_uri: str, *, max_length: int = MAX_URI_LENGTH, max_segments: int = MAX_SEGMENTS) -> str:
    """The path of an original request URI as a proxy or the app behind it may route it: without
    query, percent-decoded, NFKC-folded, path parameters and trailing dots and spaces dropped from
    each segment, dot segments resolved, repeated and trailing slashes dropped.

    nginx routes `/admin;x=1/s`, `/admin./s` and `/admin%20/s` by a literal `location` match, but
    passes the URI on as sent, and the app may read them as `/admin/s` (Servlet containers strip
    `;` parameters, Windows and .NET trailing dots and spaces, some frameworks fold case or
    compatibility characters). Each is judged here as the path the most lenient app would serve;
    rules match case-insensitively (RouteTable). What no reading makes safe is refused (BadTarget,
    a 400): a climb above the root, control characters (NUL), bytes that are not UTF-8 (overlong
    forms), backslashes (a separator to some apps, not to nginx), a percent sign still encoding
    something after one decoding (`..%252F`: an app that decodes twice sees `../`), segments that
    are only dots and spaces, and URIs beyond `max_length` characters or `max_segments` segments."""
    if len(raw_uri) > max_length:
        raise BadTarget(f"the original URI is longer than {max_length} characters")
    uri = origin_form(raw_uri).split("?", 1)[0]
    if _PLAIN.fullmatch(uri):  # the common case: what _steps() would answer, without the steps
        if uri.count("/") > max_segments:
            raise BadTarget(f"the original URI has more than {max_segments} segments")
        return uri
    return _steps(uri, max_segments)


def _steps(uri: str, max_segments: int) -> str:
    """normalize() for a URI already cut to its path."""
    if not uri.startswith("/"):
        raise BadTarget("the original URI must be a path starting with /")
    try:
        path = unquote(uri, errors="strict") if "%" in uri else uri
    except UnicodeDecodeError:
        raise BadTarget("the original URI is not UTF-8 once percent-decoded") from None
    path = unicodedata.normalize("NFKC", path)
    if _ENCODED.search(path):
        raise BadTarget("the original URI is percent-encoded twice")
    if _CONTROL.search(path):
        raise BadTarget("the original URI holds control characters")
    if "\\" in path:
        raise BadTarget("the original URI holds a backslash")
    if path.count("/") > max_segments:
        raise BadTarget(f"the original URI has more than {max_segments} segments")
    out: list[str] = []
    for raw in path.split("/"):
        seg = raw.split(";", 1)[0]
        if seg in ("", "."):
            continue
        if seg == "..":
            if not out:
                raise BadTarget("the original URI climbs above the root")
            out.pop()
            continue
        seg = seg.rstrip(". ")
        if not seg:
            raise BadTarget("the original URI has a segment of only dots and spaces")
        out.append(seg)
    return "/" + "/".join(out)
