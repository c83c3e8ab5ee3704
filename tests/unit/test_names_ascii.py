"""names.py's shortcut for printable ASCII gives what PRECIS and the script rule give: the same
shown form, key and skeleton, and the same refusals, character by character and for whole names."""

from __future__ import annotations

import pytest
from precis_i18n import get_profile

from tillkey import names

PRESERVED = get_profile("UsernameCasePreserved")
KEY = get_profile("UsernameCaseMapped:CaseFold")
PRINTABLE = [chr(c) for c in range(0x21, 0x7F)]


@pytest.mark.parametrize(
    "raw",
    [*PRINTABLE, "".join(PRINTABLE), "Anna.Smith+tag@Example.COM", "  padded@shop.test ", "O0Il1|rn_m-x@y.z"],
)
def test_the_ascii_shortcut_matches_precis(raw: str) -> None:
    shown = str(PRESERVED.enforce(raw.strip()))
    name = names.email(raw) if "@" in raw else names.admin_username(raw)
    assert name == names.Name(shown, str(KEY.enforce(shown)), names.skeleton(shown))


@pytest.mark.parametrize("raw", ["", " ", "a b@shop.test", "tab\t@shop.test", "nul\x00@shop.test"])
def test_what_precis_refuses_is_still_refused(raw: str) -> None:
    with pytest.raises(Exception, match=r"PRECIS|characters"):
        names.email(raw)


def _slow_skeleton(name: str) -> str:
    return names._skeleton(names._skeleton(name).casefold())[: names.SKELETON_LENGTH]


@pytest.mark.parametrize("seed", range(20))
def test_the_ascii_skeleton_shortcut_matches_the_uts39_steps(seed: int) -> None:
    """Two str.translate passes give the skeleton NFD, prototypes and case folding give."""
    import random

    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(128)]
    for text in ["".join(PRINTABLE), 'rnO0Il1|%`"@x.y', *("".join(rng.choices(alphabet, k=30)) for _ in range(50))]:
        assert names.skeleton(text) == _slow_skeleton(text), repr(text)
