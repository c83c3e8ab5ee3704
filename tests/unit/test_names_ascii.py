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
