"""Account names (admin usernames, customer and admin emails): one spelling per identity, and no
look-alikes.

The threat: `alice` in fullwidth letters, with a Cyrillic U+0441 for the c, or + U+200B looks like `alice` in
the console, the audit log and an email, but were distinct accounts beside her. So:

- **Normalised (RFC 8265 PRECIS, via precis-i18n).** A name is enforced by the UsernameCasePreserved
  profile when it is created (width mapping, NFC; spaces, controls and invisible characters such as
  U+200B refused) and keyed by UsernameCaseMapped with case folding, so `Alice` and `alice` are one
  account. Emails get the same profile on the whole address (`@`, `.`, `+` are allowed by it).
- **One spelling at sign-in.** A login name is looked up only when it already is its own canonical
  spelling, case aside: fullwidth `alice` signs in as nobody, not as alice (`lookup_key`).
- **No confusables at creation (UTS #39, data from confusable-homoglyphs).** A name mixing scripts
  beyond UTS #39's "highly restrictive" sets (Latin with Han and Japanese or Korean) is refused
  (for an email: its local part, or one label of its domain),
  and so is a name whose skeleton (each character replaced by its prototype in Unicode's
  confusables data, compared without case) is that of an existing account. For customer emails
  the skeleton rule applies to addresses with non-ASCII characters only: ASCII addresses are told
  apart by mail delivery, and refusing `john1@` beside `johnl@` would turn shoppers away.

Existing accounts keep their names; see README (Account names) for what changes for them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from confusable_homoglyphs import categories, confusables
from precis_i18n import get_profile

from tillkey.errors import InvalidRequest

_PRESERVED = get_profile("UsernameCasePreserved")
_KEY = get_profile("UsernameCaseMapped:CaseFold")
# A key no canonical name can have (PRECIS refuses spaces): what a non-canonical spelling looks up.
_UNMATCHED = " "
SKELETON_LENGTH = 1024  # the store's column; a prototype may be longer than its source
_NEUTRAL = frozenset({"COMMON", "INHERITED"})
# UTS #39 §5.2 "highly restrictive": one script, or Latin with one of these CJK sets.
_CJK_SETS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


@dataclass(frozen=True, slots=True)
class Name:
    shown: str  # stored and displayed: canonical, case preserved
    key: str  # unique key: canonical, case folded
    skeleton: str  # UTS #39 skeleton, case folded: equal for look-alikes


# Printable ASCII but space: RFC 8264's ASCII7 range, PVALID in the IdentifierClass and unchanged by
# width mapping and NFC, so PRECIS hands it back as it is (and folds its case as str.lower does);
# one Latin script. The import of a million customers spends most of its time in PRECIS otherwise.
_ASCII7 = re.compile(r"[\x21-\x7e]+")


def _canonical(raw: str, what: str) -> str:
    stripped = raw.strip()
    if _ASCII7.fullmatch(stripped):
        return stripped
    try:
        return str(_PRESERVED.enforce(raw.strip()))
    except UnicodeError:
        raise InvalidRequest(
            f"The {what} may not hold spaces, control or invisible characters (RFC 8265 PRECIS)."
        ) from None


def _scripts_ok(name: str) -> bool:
    scripts = {s for s in categories.unique_aliases(name) if s not in _NEUTRAL}
    return len(scripts) <= 1 or any(scripts <= allowed for allowed in _CJK_SETS)


@lru_cache(maxsize=4096)
def _prototype(ch: str) -> str:
    """The character's prototype in confusables.txt. The library lists, for a source character,
    its one target; for a target, all its sources; a pair that list only each other is one class."""
    found = confusables.is_confusable(ch, greedy=True)
    if not found:
        return ch
    glyphs = [str(h["c"]) for h in found[0]["homoglyphs"]]
    if len(glyphs) != 1:
        return ch  # a prototype with several sources
    target = glyphs[0]
    back = confusables.is_confusable(target, greedy=True) if len(target) == 1 else None
    if back and [h["c"] for h in back[0]["homoglyphs"]] == [ch]:
        return min(ch, target)
    return target


def _skeleton(text: str) -> str:
    mapped = "".join(_prototype(ch) for ch in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


@lru_cache(maxsize=1)
def _ascii_prototypes() -> tuple[dict[int, str], frozenset[str]]:
    """ASCII characters whose prototype is ASCII too (all but `%`), as a str.translate table, and
    the rest. For a name of only the former, NFD changes nothing and case folding is str.lower, so
    the skeleton is two translations: what bulk imports of millions of ASCII emails need."""
    table = {c: _prototype(chr(c)) for c in range(128)}
    safe = {c: p for c, p in table.items() if p.isascii()}
    unsafe = frozenset(chr(c) for c in table if c not in safe)
    if any(ch in unsafe for p in safe.values() for ch in p.lower()):  # a prototype leading out: no shortcut
        return {}, frozenset(chr(c) for c in range(128))
    return safe, unsafe


def skeleton(name: str) -> str:
    """UTS #39 skeleton (NFD, prototypes, NFD) without case: taken as written (`I` looks like `l`),
    then again after case folding (`0` is like `O`, which folds to `o`)."""
    if name.isascii():
        table, unsafe = _ascii_prototypes()
        if unsafe.isdisjoint(name):
            return name.translate(table).lower().translate(table)[:SKELETON_LENGTH]
    return _skeleton(_skeleton(name).casefold())[:SKELETON_LENGTH]


def _parts(name: str, is_email: bool) -> list[str]:
    """What must each be of one script: an email's local part and each label of its domain
    (`иван@example.com` is fine), a username as a whole."""
    if not is_email:
        return [name]
    local, _, domain = name.rpartition("@")
    return [local, *domain.split(".")]


def _name(raw: str, what: str, max_length: int, *, is_email: bool = False) -> Name:
    shown = _canonical(raw, what)
    if len(shown) > max_length:
        raise InvalidRequest(f"The {what} must be 1 to {max_length} characters.")
    if _ASCII7.fullmatch(shown):
        return Name(shown, shown.lower(), skeleton(shown))
    if not all(_scripts_ok(part) for part in _parts(shown, is_email)):
        raise InvalidRequest(f"The {what} mixes writing systems (for example Latin and Cyrillic letters).")
    return Name(shown, str(_KEY.enforce(shown)), skeleton(shown))


def admin_username(raw: str) -> Name:
    """A new admin's username, or InvalidRequest saying why not (the skeleton is checked by the store)."""
    return _name(raw, "username", 128)


def email(raw: str) -> Name:
    """A new account's email address, normalised, or InvalidRequest."""
    return _name(raw, "email address", 254, is_email=True)


def skeleton_matters(name: Name, *, is_email: bool) -> bool:
    """Whether a look-alike of an existing account is refused for this name (module docstring)."""
    return not is_email or not name.shown.isascii()


def lookup_key(raw: str) -> str:
    """The key a sign-in name looks up: its canonical key when the name is written canonically
    (case aside), else a key that matches no account."""
    stripped = raw.strip()
    unmatched = (_UNMATCHED + stripped.casefold())[:255]  # fits the throttle table's key column
    try:
        shown = _PRESERVED.enforce(stripped)
    except UnicodeError:
        return unmatched
    return str(_KEY.enforce(shown)) if shown == stripped else unmatched
