"""What an Active Directory answers that slapd never does (tests/test_ldap.py runs the rest
against a real slapd): objectGUID as the stable id, and ranged `member` values for groups past
1,500 members (MS-ADTS 3.1.1.3.1.3.3), read here from answers shaped as python-ldap returns them."""

from __future__ import annotations

import uuid
from typing import Any

from tillkey.federation import ldap as wire
from tillkey.federation.directory import _by_subject

CONFIG = wire.Config(
    "ldaps://dc.corp.example",
    "CN=svc,DC=corp,DC=example",
    "",
    "OU=Staff,DC=corp,DC=example",
    "(&(objectCategory=person)(sAMAccountName={username}))",
    "OU=Groups,DC=corp,DC=example",
)
GUID = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")


def test_an_ad_entry_is_known_by_its_object_guid() -> None:
    attrs = {"objectGUID": [GUID.bytes_le], "sAMAccountName": [b"jdoe"], "mail": [b"jdoe@corp.example"]}
    person = wire.person(CONFIG, "CN=John Doe,OU=Staff,DC=corp,DC=example", attrs)
    assert person is not None and person.subject == str(GUID) and person.username == "jdoe"
    assert CONFIG.username_attribute == "sAMAccountName"
    # Found again by that id, its 16 bytes escaped one by one (RFC 4515), within the user filter.
    escaped = "".join(f"\\{b:02x}" for b in GUID.bytes_le)
    assert _by_subject(CONFIG, str(GUID)) == (
        f"(&(&(objectCategory=person)(sAMAccountName=*))(|(entryUUID={GUID})(objectGUID={escaped})))"
    )
    assert wire.person(CONFIG, "CN=x", {"sAMAccountName": [b"x"]}) is None  # no stable id: never linked


class RangedDirectory:
    """A group of 3,200 members, 1,500 values per answer, as Active Directory pages them."""

    members = [f"CN=User {i},OU=Staff,DC=corp,DC=example".encode() for i in range(3200)]

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def search_ext_s(self, dn: str, scope: int, filterstr: str, attrs: list[str]) -> list[tuple[str, Any]]:
        self.asked.append(attrs)
        start = int(attrs[0].partition(";range=")[2].partition("-")[0])
        end = start + 1499
        last = end >= len(self.members) - 1
        key = f"member;range={start}-{'*' if last else end}"
        return [(dn, {key: self.members[start : end + 1]})]


def test_ranged_members_are_read_to_the_end() -> None:
    conn = object.__new__(wire.Connection)
    conn.config = CONFIG
    conn.conn = RangedDirectory()
    group = "CN=Sales,OU=Groups,DC=corp,DC=example"
    first = {"member;range=0-1499": RangedDirectory.members[:1500]}
    conn.search = lambda base, filterstr, attrs: iter([(group, first)])  # type: ignore[method-assign]
    groups = conn.groups()
    assert len(groups[wire.normal_dn(group)]) == 3200
    assert conn.conn.asked == [["member;range=1500-*"], ["member;range=3000-*"]]
    assert wire.normal_dn("CN=User 7, OU=Staff,DC=Corp,DC=example") in groups[wire.normal_dn(group)]
