"""Console pages about the console itself and the server's state: dashboard, sessions (one's own,
and anyone's with Tillkey::sessions), signing keys, audit log. Thin: read, call a service, render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.responses import JSONResponse, Response

from tillkey import audit
from tillkey.access.tree import ADMIN_SELF
from tillkey.audit import OUTCOMES
from tillkey.audit.query import QueryError, make_query
from tillkey.console import actors, listing
from tillkey.console.login import safe_next
from tillkey.console.routing import Console, ConsolePages
from tillkey.console.sign_in_session import KIND, cookie_name, delete_cookie
from tillkey.errors import InvalidRequest, NotFound
from tillkey.parsing import ascii_int
from tillkey.principal import UserType
from tillkey.store import audit as audit_repo
from tillkey.store import sessions as sessions_repo
from tillkey.store.accounts import list_admins
from tillkey.store.audit import AuditQuery, AuditRecord
from tillkey.store.sessions import Session

pages = ConsolePages()
DASHBOARD = "Magento_Backend::dashboard"
SESSIONS = "Tillkey::sessions"
KEYS = "Tillkey::keys"
AUDIT = "Tillkey::audit"
HANDLE = 24  # hex digits of a session's digest that name it on the page (never the cookie)
CHART_EVENTS = (
    (audit.LOGIN_SUCCESS, "Sign-ins", "#2f7d32"),
    (audit.LOGIN_FAILURE, "Failed sign-ins", "#c62828"),
    (audit.TOKEN_ISSUED, "Tokens issued", "#1f5fa8"),
)
LOCKOUT_EVENTS = (audit.ACCOUNT_LOCKED, audit.LOGIN_THROTTLED)


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Grouped bars per hour as SVG geometry (no script: inline SVG), with its axes: a y scale
    rounded to a readable step, gridlines, and an hour label every few hours."""

    width: int
    height: int
    left: int
    top: int
    bottom: int
    bars: list[Bar]
    grid: list[tuple[float, int]]  # (y, value)
    ticks: list[tuple[float, str]]  # (x, "HH:00")
    peak: int
    total: int


def _nice(peak: int) -> int:
    """The y axis' top: the peak rounded up to 4, 8 or 20 times a power of ten, so each of the
    four gridlines is a whole number."""
    scale = 1
    while True:
        for m in (4, 8, 20):
            if m * scale >= peak:
                return m * scale
        scale *= 10


def chart(rows: list[tuple[int, str, int]], now_hour: int, hours: int = 24) -> Chart:
    counts = {(h, e): n for h, e, n in rows}
    wanted = {e for e, _l, _c in CHART_EVENTS}
    peak = max([0, *(n for (_h, e), n in counts.items() if e in wanted)])
    top_value = _nice(peak)
    width, height, left, top, bottom = 720, 240, 40, 12, 26
    plot_w, plot_h = width - left - 8, height - top - bottom
    group = plot_w / hours
    bar = (group - 4) / len(CHART_EVENTS)
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    total = 0
    for i in range(hours):
        hour = now_hour - hours + 1 + i
        label_hour = datetime.fromtimestamp(hour * 3600, UTC).strftime("%H:00")
        if i % 3 == 0 or i == hours - 1:
            ticks.append((round(left + i * group + group / 2, 1), label_hour))
        for j, (event, label, color) in enumerate(CHART_EVENTS):
            n = counts.get((hour, event), 0)
            total += n
            h = plot_h * n / top_value
            bars.append(
                Bar(
                    round(left + i * group + 2 + j * bar, 2),
                    round(top + plot_h - h, 2),
                    round(bar - 1, 2),
                    round(h, 2),
                    color,
                    f"{label_hour} {label}: {n}",
                )
            )
    grid = [(round(top + plot_h - plot_h * k / 4, 1), top_value * k // 4) for k in range(5)]
    return Chart(width, height, left, top, bottom, bars, grid, ticks, peak, total)


@pages.route("GET", "/console/", resources=[ADMIN_SELF], summary="Console dashboard")
async def dashboard(c: Console) -> Response:
    if not c.allowed(DASHBOARD):
        return c.render("dashboard.html", "Dashboard", stats=None, chart=None, legend=CHART_EVENTS)
    now_ms = int(c.tk.clock.now() * 1000)
    since = now_ms - 86_400_000
    async with c.tk.db.session() as s:
        live = await sessions_repo.count_live(s, now_ms)
        rows = await audit_repo.hourly_counts(s, since, [e for e, _l, _c in CHART_EVENTS] + list(LOCKOUT_EVENTS))
    totals: dict[str, int] = {}
    for _h, event, n in rows:
        totals[event] = totals.get(event, 0) + n
    stats = [
        ("Console sessions", live.get(KIND, 0)),
        ("API sessions", sum(n for k, n in live.items() if k != KIND)),
        ("Tokens issued (24 h)", totals.get(audit.TOKEN_ISSUED, 0)),
        ("Failed sign-ins (24 h)", totals.get(audit.LOGIN_FAILURE, 0)),
        ("Lockouts (24 h)", sum(totals.get(e, 0) for e in LOCKOUT_EVENTS)),
    ]
    drawn = chart(rows, now_ms // 3_600_000)
    return c.render("dashboard.html", "Dashboard", stats=stats, chart=drawn, legend=CHART_EVENTS)


# --- sessions -----------------------------------------------------------------------------------


@pages.route("GET", "/console/sessions", resources=[ADMIN_SELF], summary="Console sessions")
async def sessions_page(c: Console) -> Response:
    now_ms = int(c.tk.clock.now() * 1000)
    async with c.tk.db.session() as s:
        mine = await sessions_repo.of_user(s, now_ms, user_type=UserType.ADMIN, user_id=c.session.user_id, kind=KIND)
        everyone = await sessions_repo.of_kind(s, now_ms, KIND) if c.allowed(SESSIONS) else []
        names = {a.id: a.username for a in await list_admins(s)} if everyone else {}
        seen = await sessions_repo.last_seen(s, [x.digest for x in mine + everyone])

    def row(x: Session) -> dict[str, object]:
        return {
            "handle": x.digest[:HANDLE],
            "admin": names.get(x.user_id, str(x.user_id)),
            "created": when(x.created_ms),
            "seen": when(seen.get(x.digest, x.created_ms)),
            "expires": when(x.expires_ms),
            "current": x.digest == c.session.session.digest,
        }

    everyone_rows, pager, q = listing.paginate(
        c.request, [row(x) for x in everyone], lambda r: f"{r['admin']} {r['created']} {r['seen']}"
    )
    return c.render(
        "sessions.html",
        "Sessions",
        mine=[row(x) for x in mine],
        everyone=everyone_rows,
        can_all=c.allowed(SESSIONS),
        pager=pager,
        q=q,
    )


@pages.route(
    "POST",
    "/console/sessions/end",
    resources=[ADMIN_SELF],
    summary="End a console session",
    confirm="End this session?",
)
async def end_session(c: Console) -> Response:
    handle = c.field("session")
    if len(handle) != HANDLE:
        raise InvalidRequest("Choose a session to end.")
    now_ms = int(c.tk.clock.now() * 1000)
    async with c.tk.db.session() as s:
        candidates = await sessions_repo.of_kind(s, now_ms, KIND, limit=10_000)
    found = next((x for x in candidates if x.digest.startswith(handle)), None)
    mine = found is not None and found.user_id == c.session.user_id and found.user_type == UserType.ADMIN
    if found is None or not (mine or c.allowed(SESSIONS)):
        raise NotFound("That session has ended already, or is not yours to end.")
    await c.tk.services.sessions.end(found, reason="ended from the console", by=c.by)
    if found.digest == c.session.session.digest:
        response = c.redirect("/console/login")
        delete_cookie(response, c.request, cookie_name(c.request))
        return response
    return c.redirect("/console/sessions")


@pages.route("POST", "/console/logout", resources=[ADMIN_SELF], summary="Sign out of the console")
async def logout(c: Console) -> Response:
    await c.tk.services.sessions.end(c.session.session, reason="logout")
    response = c.redirect("/console/login")
    delete_cookie(response, c.request, cookie_name(c.request))
    return response


@pages.route("POST", "/console/session/extend", resources=[ADMIN_SELF], summary="Stay signed in")
async def extend(c: Console) -> Response:
    """The guard already slid the idle deadline (this request is activity)."""
    if "application/json" in c.request.headers.get("accept", ""):
        return JSONResponse({"expires_in": c.frame().expires_in})
    return c.redirect(safe_next(c.field("next")))


@pages.route("GET", "/console/session/status", resources=[ADMIN_SELF], summary="Seconds left", activity=False)
async def status(c: Console) -> Response:
    return JSONResponse({"expires_in": c.frame().expires_in})


# --- signing keys -------------------------------------------------------------------------------


@pages.route("GET", "/console/keys", resources=[KEYS], summary="Signing keys")
async def keys_page(c: Console) -> Response:
    await c.tk.reload_keys()
    now = c.tk.clock.now_int()
    signer = c.tk.keyring.signer(now)
    rows = []
    for k in sorted(c.tk.keyring.by_kid.values(), key=lambda k: k.created_at, reverse=True):
        if not k.verifies_at(now):
            state = "retired"
        elif signer is k:
            state = "signing"
        elif k.retired_at is None or k.retired_at > now:
            state = "pending"
        else:
            state = "verifying"
        rows.append(
            {
                "kid": k.kid,
                "alg": k.alg,
                "state": state,
                "created": when(k.created_at * 1000),
                "verify_until": when(k.verify_until * 1000) if k.verify_until else "—",
            }
        )
    shown, pager, q = listing.paginate(c.request, rows, lambda r: f"{r['kid']} {r['alg']} {r['state']}")
    return c.render("keys.html", "Signing keys", keys=shown, pager=pager, q=q)


@pages.route("POST", "/console/keys/rotate", resources=[KEYS], summary="Rotate the signing key")
async def rotate_key(c: Console) -> Response:
    await c.tk.services.keys.rotate()
    return c.redirect("/console/keys")


# --- audit log ----------------------------------------------------------------------------------

FILTERS = ("username", "event", "outcome", "since", "until", "actor_type", "actor_id")


async def audit_rows(c: Console, query: AuditQuery) -> list[dict[str, object]]:
    """Audit records as the console lists them: the actor by name, linked to their page."""
    return await _rows(c, await c.tk.audit.search(query))


async def _rows(c: Console, found: list[AuditRecord]) -> list[dict[str, object]]:
    named = await actors.names(c.tk, [(r.actor_type, r.actor_id) for r in found])
    rows: list[dict[str, object]] = []
    for r in found:
        actor = named.get((r.actor_type, r.actor_id)) if r.actor_type is not None and r.actor_id is not None else None
        rows.append(
            {
                "seq": r.seq,
                "time": when(r.created_ms),
                "event": r.event,
                "outcome": r.outcome,
                "actor": actor,
                "username": r.username or "",
                "ip": r.ip or "",
                "details": r.details or "",
                "actor_key": (r.actor_type, r.actor_id),
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class Trail:
    """A detail page's audit trail: what the account or credential did and what was done to it
    (by another admin, a key, the CLI), newest first; `last_active` is its own latest record."""

    records: list[dict[str, object]]
    last_active: str | None


async def trail(
    c: Console, target_type: UserType, target_id: int, *, client_id: str | None = None, limit: int = 20
) -> Trail:
    """For its detail page, when the signed-in admin may read the audit log."""
    if not c.allowed(AUDIT):
        return Trail([], None)
    rows = await _rows(c, await c.tk.audit.concerning(int(target_type), target_id, client_id=client_id, limit=limit))
    mine = next((r for r in rows if r["actor_key"] == (int(target_type), target_id)), None)
    return Trail(rows, None if mine is None else str(mine["time"]))


def _int_or_none(raw: str) -> int | None:
    return ascii_int(raw, 12)


@pages.route("GET", "/console/audit", resources=[AUDIT], summary="Audit log")
async def audit_page(c: Console) -> Response:
    params = {k: c.request.query_params.get(k, "").strip()[:255] for k in FILTERS}
    error = None
    records: list[dict[str, object]] = []
    page = listing.page_number(c.request)
    more = False
    try:
        query = make_query(
            event=params["event"] or None,
            outcome=params["outcome"] or None,
            username=params["username"] or None,
            since=params["since"] or None,
            until=params["until"] or None,
            actor_type=_int_or_none(params["actor_type"]),
            actor_id=_int_or_none(params["actor_id"]),
            limit=listing.PER_PAGE * 2 + 1,
            offset=(page - 1) * listing.PER_PAGE * 2,
        )
    except QueryError as exc:
        error = f"{exc.field}: {exc.message}"
    else:
        records = await audit_rows(c, query)
        more = len(records) > listing.PER_PAGE * 2
        records = records[: listing.PER_PAGE * 2]
    families = sorted({e.partition(".")[0] + ".*" for e in audit.EVENTS})
    return c.render(
        "audit.html",
        "Audit log",
        error=error,
        params=params,
        records=records,
        events=families + sorted(audit.EVENTS),
        outcomes=sorted(OUTCOMES),
        report=None,
        pager=listing.pager(c.request, page, more=more),
    )


@pages.route("POST", "/console/audit/verify", resources=[AUDIT], summary="Verify the audit chain")
async def audit_verify(c: Console) -> Response:
    report = await c.tk.audit.check()
    params = dict.fromkeys(FILTERS, "")
    return c.render(
        "audit.html",
        "Audit log",
        params=params,
        records=[],
        events=sorted(audit.EVENTS),
        outcomes=sorted(OUTCOMES),
        pager=None,
        report={"ok": report.ok, "count": report.count, "why": report.first_break.reason if report.first_break else ""},
    )
