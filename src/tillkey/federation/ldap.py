"""LDAP / Active Directory, the wire half: search with the service account, bind as the user, read
the mapped groups (issue 15). python-ldap (the OpenLDAP binding) is blocking, so every call runs
in a worker thread on a connection of its own; nothing here touches the database.

The provider record holds the settings (store/idps.py): the URL as its issuer, the bind DN as
its client id, the bind password encrypted as its client secret, the rest in its settings.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ldap
import ldap.dn
import ldap.filter
from ldap.controls import SimplePagedResultsControl

from tillkey.errors import InvalidRequest, Unavailable
from tillkey.store.idps import Provider

T = TypeVar("T")

DEFAULT_GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
TIMEOUT_S = 5.0  # connect and per-operation: a hung directory fails the sign-in, never hangs it
PAGE = 500  # RFC 2696 paged results: under slapd's default size limit (500) and AD's (1000)
_USERNAME_ATTR = re.compile(r"\(([A-Za-z][A-Za-z0-9-]*)=\{username\}\)")
MEMBER_ATTRS = ("member", "uniqueMember")
ID_ATTRS = ("entryUUID", "objectGUID")  # OpenLDAP (RFC 4530), Active Directory


class DirectoryDown(Unavailable):
    """The directory did not answer (down, unreachable, TLS refused, service bind refused): a
    sign-in of a directory account gets a 503, never a 401 that would read as a wrong password."""

    default_message = "The directory server is not reachable. Please try again later."


@dataclass(frozen=True, slots=True)
class Config:
    """An LDAP provider's settings, read from its record."""

    url: str
    bind_dn: str
    bind_password: str = field(repr=False)
    user_base: str
    user_filter: str
    group_base: str
    group_filter: str = DEFAULT_GROUP_FILTER
    nested_groups: bool = False
    start_tls: bool = False
    tls_ca_file: str = ""
    email_attribute: str = "mail"
    name_attribute: str = "displayName"

    @property
    def username_attribute(self) -> str:
        found = _USERNAME_ATTR.search(self.user_filter)
        return found.group(1) if found else "uid"

    def user_search(self, username: str) -> str:
        """The user filter for one name, escaped per RFC 4515 section 3 (`*`, `(`, `)`, `\\`, NUL):
        a name like `*)(uid=*` is matched literally, never as filter syntax. This is the only place
        input reaches the directory: no DN is ever built from input (a user's DN is the one the
        search returned), so there is no DN value to escape (RFC 4514)."""
        return self.user_filter.replace("{username}", escape(username))

    @property
    def every_user(self) -> str:
        return self.user_filter.replace("{username}", "*")


def settings_of(provider: Provider, bind_password: str) -> Config:
    s = provider.settings
    return Config(
        url=provider.issuer,
        bind_dn=provider.client_id,
        bind_password=bind_password,
        user_base=s.get("user_base", ""),
        user_filter=s.get("user_filter", "(uid={username})"),
        group_base=s.get("group_base", ""),
        group_filter=s.get("group_filter") or DEFAULT_GROUP_FILTER,
        nested_groups=s.get("nested_groups") == "1",
        start_tls=s.get("start_tls") == "1",
        tls_ca_file=s.get("tls_ca_file", ""),
        email_attribute=s.get("email_attribute") or "mail",
        name_attribute=s.get("name_attribute") or "displayName",
    )


def check_settings(url: str, settings: Mapping[str, str], bind_dn: str) -> None:
    """What `tillkey idp add --protocol ldap` must be given, checked before it is stored."""
    if not re.match(r"^ldaps?://[^/\s]+/?$", url):
        raise InvalidRequest("An LDAP provider's URL is ldap://HOST[:PORT] or ldaps://HOST[:PORT].")
    if url.startswith("ldaps://") and settings.get("start_tls") == "1":
        raise InvalidRequest("StartTLS is for ldap:// URLs; ldaps:// is TLS from the start.")
    for what in ("user_base", "group_base"):
        if not settings.get(what) or not ldap.dn.is_dn(settings[what]):
            raise InvalidRequest(f"The {what.replace('_', ' ')} must be a distinguished name.")
    if not bind_dn or not ldap.dn.is_dn(bind_dn):
        raise InvalidRequest("The bind DN must be a distinguished name.")
    user_filter = settings.get("user_filter", "")
    if user_filter.count("{username}") != 1 or not user_filter.startswith("("):
        raise InvalidRequest('The user filter is an LDAP filter with {username} once, e.g. "(uid={username})".')
    ca_file = settings.get("tls_ca_file", "")
    if ca_file and not ca_file.startswith("/"):
        raise InvalidRequest("The TLS CA file is an absolute path (read by every server process).")
    interval = settings.get("sync_interval", "300")
    if not interval.isdigit() or not 0 <= int(interval) <= 86400:
        raise InvalidRequest("The sync interval is 0 (off) to 86400 seconds.")


def escape(value: str) -> str:
    """A value for a filter, escaped per RFC 4515 section 3."""
    return str(ldap.filter.escape_filter_chars(value))


def normal_dn(dn: str) -> str:
    """A DN compared as the directory would: attribute types and values case-folded, spacing
    normalised (RFC 4514), so "CN=Sales, OU=Groups" in a role map matches "cn=Sales,ou=groups"."""
    try:
        return str(ldap.dn.dn2str(ldap.dn.str2dn(dn))).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


@dataclass(frozen=True, slots=True)
class Person:
    """A directory user as Tillkey needs it: `subject` is its stable id (entryUUID, objectGUID),
    the key its external identity is linked by, so a renamed or recycled name moves nothing."""

    dn: str
    subject: str
    username: str
    email: str | None
    name: str


def _first(attrs: Mapping[str, list[bytes]], name: str) -> bytes | None:
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return None


def _text(attrs: Mapping[str, list[bytes]], name: str) -> str | None:
    raw = _first(attrs, name)
    return raw.decode("utf-8", "replace") if raw is not None else None


def person(config: Config, dn: str, attrs: Mapping[str, list[bytes]]) -> Person | None:
    subject = _text(attrs, "entryUUID")
    if subject is None:
        guid = _first(attrs, "objectGUID")
        subject = str(uuid.UUID(bytes_le=guid)) if guid is not None and len(guid) == 16 else None
    username = _text(attrs, config.username_attribute)
    if subject is None or not username:
        return None
    name = _text(attrs, config.name_attribute) or _text(attrs, "cn") or username
    return Person(dn, subject, username, _text(attrs, config.email_attribute), name)


def _user_attrs(config: Config) -> list[str]:
    return [*ID_ATTRS, config.username_attribute, config.email_attribute, config.name_attribute, "cn"]


def connect(config: Config) -> Any:
    """A connection with the options every one needs, TLS started when asked. Certificates are
    verified (demand): against the system's CAs, or `tls_ca_file` (a directory's own CA)."""
    conn = ldap.initialize(config.url, bytes_mode=False)
    for option, value in (
        (ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3),
        (ldap.OPT_REFERRALS, 0),  # AD's referrals would rebind elsewhere anonymously
        (ldap.OPT_NETWORK_TIMEOUT, TIMEOUT_S),
        (ldap.OPT_TIMEOUT, TIMEOUT_S),
        (ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND),
    ):
        conn.set_option(option, value)
    if config.tls_ca_file:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, config.tls_ca_file)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # after the TLS options: a context of this connection's own
    if config.start_tls:
        conn.start_tls_s()
    return conn


class Connection:
    """One blocking connection (use inside `run`), bound as the service account."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.conn: Any = connect(config)
        try:
            self.conn.simple_bind_s(config.bind_dn, config.bind_password)
        except BaseException:
            self.conn.unbind_s()
            raise

    def close(self) -> None:
        self.conn.unbind_s()

    def search(self, base: str, filterstr: str, attrs: list[str]) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Every entry, a page at a time (RFC 2696); referrals (dn None) skipped."""
        page = SimplePagedResultsControl(True, size=PAGE, cookie="")
        while True:
            msgid = self.conn.search_ext(base, ldap.SCOPE_SUBTREE, filterstr, attrs, serverctrls=[page])
            _, entries, _, controls = self.conn.result3(msgid, timeout=TIMEOUT_S * 6)
            for dn, entry in entries:
                if dn is not None and isinstance(entry, dict):
                    yield dn, entry
            cookie = next((c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType), b"")
            if not cookie:
                return
            page.cookie = cookie

    def find(self, username: str) -> Person | None:
        """The one user of this name; none when zero or several match (an ambiguous name signs
        nobody in)."""
        found = [
            p
            for dn, attrs in self.search(
                self.config.user_base, self.config.user_search(username), _user_attrs(self.config)
            )
            if (p := person(self.config, dn, attrs)) is not None
        ]
        return found[0] if len(found) == 1 else None

    def users(self) -> dict[str, Person]:
        """Every user of the user filter, by normalised DN."""
        found = {}
        for dn, attrs in self.search(self.config.user_base, self.config.every_user, _user_attrs(self.config)):
            p = person(self.config, dn, attrs)
            if p is not None:
                found[normal_dn(dn)] = p
        return found

    def groups(self) -> dict[str, set[str]]:
        """Every group of the group filter and its direct members, by normalised DN."""
        found: dict[str, set[str]] = {}
        for dn, attrs in self.search(self.config.group_base, self.config.group_filter, list(MEMBER_ATTRS)):
            members: set[str] = set()
            for key, values in attrs.items():
                name, _, ranged = key.lower().partition(";range=")
                if name not in ("member", "uniquemember"):
                    continue
                members |= {normal_dn(v.decode("utf-8", "replace")) for v in values}
                if ranged and not ranged.endswith("-*"):
                    members |= self._rest_of_range(dn, name, ranged)
            found[normal_dn(dn)] = members
        return found

    def _rest_of_range(self, dn: str, name: str, ranged: str) -> set[str]:
        """Active Directory answers a group of more than 1,500 members with `member;range=0-1499`
        (MS-ADTS 3.1.1.3.1.3.3): the rest is asked for range by range, or the group would look
        smaller than it is and its members be deactivated."""
        members: set[str] = set()
        while not ranged.endswith("-*"):
            start = int(ranged.rpartition("-")[2]) + 1
            result = self.conn.search_ext_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [f"{name};range={start}-*"])
            attrs = result[0][1] if result else {}
            part = next(((k, v) for k, v in attrs.items() if k.lower().startswith(f"{name};range=")), None)
            if part is None:
                break
            members |= {normal_dn(v.decode("utf-8", "replace")) for v in part[1]}
            ranged = part[0].lower().partition(";range=")[2]
        return members

    def user_bind(self, dn: str, password: str) -> bool:
        """Bind as the user on a connection of its own. An empty password never gets here: RFC 4513
        section 5.1.2 makes a bind with a DN and no password an unauthenticated bind, which many
        servers answer with success."""
        if not password or "\x00" in password:
            return False
        user: Any = None
        try:
            user = connect(self.config)
            user.simple_bind_s(dn, password)
            return True
        except (ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM, ldap.INAPPROPRIATE_AUTH):
            return False
        finally:
            if user is not None:
                user.unbind_s()


def members_of(groups: Mapping[str, set[str]], group: str, *, nested: bool) -> set[str]:
    """The DNs in a group; with `nested`, through every group inside it (cycles end)."""
    seen: set[str] = set()
    todo = [normal_dn(group)]
    found: set[str] = set()
    while todo:
        g = todo.pop()
        if g in seen:
            continue
        seen.add(g)
        for member in groups.get(g, ()):
            if member in groups:
                if nested:
                    todo.append(member)
            else:
                found.add(member)
    return found


async def run(config: Config, work: Callable[[Connection], T]) -> T:
    """`work` on a fresh service-bound connection, in a worker thread; a directory that does not
    answer (or refuses the service account) raises DirectoryDown with the cause for the log."""

    def blocking() -> T:
        conn = Connection(config)
        try:
            return work(conn)
        finally:
            conn.close()

    try:
        return await asyncio.to_thread(blocking)
    except ldap.LDAPError as exc:
        raise DirectoryDown(detail=f"LDAP {type(exc).__name__}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return str(info.get("desc") or "error")[:200]
