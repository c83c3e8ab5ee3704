"""Reading a SAMLResponse (federation/saml.py): its raw shape, checked before any parser sees it,
and the facts of what pysaml2 verified, read once into plain values for the SP's own checks."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tillkey.federation.oidc import Refused

MAX_RESPONSE_BYTES = 256 * 1024
# Anything that lets one document say two things: comments split text nodes that canonical XML
# joins (a NameID read as a prefix of what was signed), a DTD declares IDs and entities.
_HOSTILE = re.compile(rb"<!--|<!DOCTYPE|<!ENTITY|<\?xml-stylesheet", re.IGNORECASE)
# Any prefix: XML names may hold non-ASCII letters, which \w on bytes would not match.
_ASSERTION = re.compile(rb"<(?:[^\s<>/:!?]+:)?(?:Encrypted)?Assertion[\s>/]")


@dataclass(frozen=True, slots=True)
class Checked:
    """The facts of a response pysaml2 verified, as plain values for Tillkey's own checks."""

    issuer: str
    response_signed: bool
    assertion_signed: bool
    destination: str | None
    in_response_to: str | None
    assertion_id: str
    audiences: tuple[str, ...]
    not_before: str | None
    not_on_or_after: str | None
    confirmations: tuple[tuple[str | None, str | None, str | None], ...]  # recipient, in_response_to, noa
    name_id: str
    name_id_format: str | None
    attributes: dict[str, tuple[str, ...]]


def decoded(value: str) -> bytes:
    if not value or len(value) > MAX_RESPONSE_BYTES:
        raise Refused("no SAMLResponse, or one too large")
    try:
        return base64.b64decode(value.encode(), validate=False)
    except (binascii.Error, ValueError):
        raise Refused("SAMLResponse is not base64") from None


def shape(document: bytes) -> None:
    """Refused before any XML parser sees it: comments, DTDs and more than one assertion. A
    response carries one assertion; a second (signed or not) is how signature wrapping hides
    the element that was verified behind the one that is read."""
    if _HOSTILE.search(document):
        raise Refused("SAMLResponse holds a comment, DTD or processing instruction")
    if len(_ASSERTION.findall(document)) != 1:
        raise Refused("SAMLResponse does not hold exactly one assertion")


def instant(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Refused(f"not a SAML time: {text[:40]!r}") from None


def _text(element: Any) -> str | None:
    return None if element is None else str(element.text or "").strip() or None


def facts(answer: Any) -> Checked:
    """What pysaml2's verified objects say, read once into plain values."""
    response, assertion = answer.response, answer.assertion
    conditions = assertion.conditions
    audiences = tuple(
        str(a.text).strip()
        for restriction in (conditions.audience_restriction if conditions else [])
        for a in restriction.audience
    )
    confirmations = []
    for sc in assertion.subject.subject_confirmation if assertion.subject else []:
        data = sc.subject_confirmation_data
        if sc.method == "urn:oasis:names:tc:SAML:2.0:cm:bearer" and data is not None:
            confirmations.append((data.recipient, data.in_response_to, data.not_on_or_after))
    attributes: dict[str, tuple[str, ...]] = {}
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute:
            values = tuple(str(v.text).strip() for v in attribute.attribute_value if v.text)
            for key in {attribute.name, attribute.friendly_name} - {None}:
                attributes[str(key)] = values
    name_id = assertion.subject.name_id if assertion.subject else None
    issuer = _text(assertion.issuer) or ""
    return Checked(
        issuer,
        response.signature is not None,
        assertion.signature is not None or bool(getattr(answer, "assertion_signed", False)),
        response.destination,
        response.in_response_to,
        str(assertion.id or ""),
        audiences,
        conditions.not_before if conditions else None,
        conditions.not_on_or_after if conditions else None,
        tuple(confirmations),
        str(name_id.text or "").strip() if name_id is not None else "",
        name_id.format if name_id is not None else None,
        attributes,
    )
