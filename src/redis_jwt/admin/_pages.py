"""The admin page's HTML: every value that comes from a user or from Redis is escaped here."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from .. import SessionInfo
from .._cli.sessions import device_fields
from .._cli.stats import Stats

__all__ = ["Page", "device_of", "relative"]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


_BROWSERS = (
    ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
    ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"),
    ("python-requests", "requests"),
)  # fmt: skip
_SYSTEMS = (
    ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
    ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"),
)  # fmt: skip


def device_of(info: SessionInfo) -> tuple[str, str, str]:
    """``(title, address, full user agent)`` of a session; "Unknown device" when unsaid.

    Uses :attr:`SessionInfo.ip`/``user_agent``, else ``ip``/``user_agent`` keys an
    app may have kept in ``data_session``.
    """
    address, agent = device_fields(info)
    if not agent:
        return ("Unknown device", address, "")
    browser = next((name for marker, name in _BROWSERS if marker in agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    if browser and system:
        title = f"{browser} on {system}"
    else:
        title = browser or system or re.split(r"[\s/;(]", agent, maxsplit=1)[0][:40] or "Unknown"
    return (title, address, agent)


def relative(moment: datetime | None, now: datetime) -> str:
    """``"3 min ago"``, ``"in 2 h"``: a short distance from ``now``."""
    if moment is None:
        return "—"
    seconds = (moment - now).total_seconds()
    future = seconds > 0
    span = abs(seconds)
    if span < 45:
        text = "just now" if not future else "in a moment"
        return text
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if span >= size:
            amount = round(span / size)
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    return "now"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Page:
    """Builds the admin page for one request."""

    def __init__(self, root: str, csrf_token: str, title: str) -> None:
        self.root = root
        self.csrf = csrf_token
        self.title = title

    def _url(self, path: str, **query: str) -> str:
        tail = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items() if v)
        return f"{self.root}{path}" + (f"?{tail}" if tail else "")

    def _csrf_field(self) -> str:
        return f'<input type="hidden" name="csrf_token" value="{_e(self.csrf)}">'

    def render(
        self,
        *,
        stats: Stats | None,
        user: str,
        sessions: list[SessionInfo] | None,
        notice: str = "",
        error: str = "",
        confirm_all: bool = False,
    ) -> str:
        """The whole page."""
        body = [self._header(), '<main class="wrap">', self._stats(stats)]
        if notice:
            body.append(f'<div class="flash ok" role="status">{_e(notice)}</div>')
        if error:
            body.append(f'<div class="flash bad" role="alert">{_e(error)}</div>')
        body.append('<div class="grid">')
        body.append('<section class="card main-card">' + self._search(user))
        body.append(self._sessions(user, sessions) + "</section>")
        body.append(self._events() + "</div>")
        if confirm_all and user and sessions:
            body.append(self._confirm_all(user, len(sessions)))
        body.append("</main>")
        return self._document("".join(body))

    def _document(self, body: str) -> str:
        static = f"{self.root}/static"
        return (
            "<!doctype html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="csrf-token" content="{_e(self.csrf)}">'
            f"<title>{_e(self.title)}</title>"
            f'<link rel="icon" href="{_e(static)}/favicon.svg" type="image/svg+xml">'
            f'<link rel="stylesheet" href="{_e(static)}/admin.css">'
            f'<script src="{_e(static)}/admin.js" defer></script>'
            f'</head><body data-root="{_e(self.root)}">{body}</body></html>'
        )

    def _header(self) -> str:
        return (
            '<header class="topbar"><div class="wrap topbar-inner">'
            f'<a class="brand" href="{_e(self._url("/"))}">'
            f'<img src="{_e(self.root)}/static/favicon.svg" alt="" width="28" height="28">'
            f"<span>{_e(self.title)}</span></a>"
            '<span class="live" id="live" data-state="off"><i></i><span>Live</span></span>'
            "</div></header>"
        )

    def _stats(self, stats: Stats | None) -> str:
        if stats is None:
            cards = [("Live sessions", "—", "Redis is unavailable"), ("Users signed in", "—", "")]
        else:
            partial = "" if stats.complete else " (partial count)"
            where = f"prefix {stats.prefix}" if stats.prefix else "layout redis-jwt"
            cards = [
                ("Live sessions", f"{stats.sessions:,}", where + partial),
                ("Users signed in", f"{stats.users:,}", "with at least one session"),
            ]
        items = "".join(
            f'<div class="stat"><div class="stat-label">{_e(label)}</div>'
            f'<div class="stat-value" data-stat="{i}">{_e(value)}</div>'
            f'<div class="stat-note">{_e(note)}</div></div>'
            for i, (label, value, note) in enumerate(cards)
        )
        return f'<section class="stats">{items}</section>'

    def _search(self, user: str) -> str:
        return (
            f'<form class="search" method="get" action="{_e(self._url("/"))}" role="search">'
            '<label for="user" class="visually-hidden">User id</label>'
            f'<input id="user" name="user" type="search" value="{_e(user)}" '
            'placeholder="Find a user by id" autocomplete="off" maxlength="512" required>'
            '<button class="btn primary" type="submit">Find</button></form>'
        )

    def _sessions(self, user: str, sessions: list[SessionInfo] | None) -> str:
        if not user or sessions is None:
            return (
                '<div class="empty"><div class="empty-icon" aria-hidden="true">⌕</div>'
                "<h2>Find a user</h2><p>Enter a user id to see where they are signed in, "
                "and end any of their sessions.</p></div>"
            )
        if not sessions:
            return (
                '<div class="empty"><div class="empty-icon" aria-hidden="true">∅</div>'
                f"<h2>No live sessions</h2><p><strong>{_e(user)}</strong> is not signed in "
                "anywhere right now.</p></div>"
            )
        now = datetime.now(UTC)
        rows = "".join(self._row(user, info, now) for info in sessions)
        count = len(sessions)
        confirm = self._url("/", user=user, confirm="all")
        return (
            '<div class="table-head"><div><h2>'
            f'Sessions of <span class="user">{_e(user)}</span></h2>'
            f'<p class="muted">{count} live session{"s" if count != 1 else ""}, newest first</p>'
            "</div>"
            f'<a class="btn danger" id="revoke-all" href="{_e(confirm)}">'
            "Sign out everywhere</a></div>"
            '<table class="sessions"><thead><tr><th>Device</th><th>Signed in</th>'
            "<th>Last active</th><th>Expires</th><th>Session id</th><th></th></tr></thead>"
            f'<tbody id="sessions">{rows}</tbody></table>'
        )

    def _row(self, user: str, info: SessionInfo, now: datetime) -> str:
        title, address, agent = device_of(info)
        active = info.last_seen_at or info.last_active_at
        known = "" if agent else " unknown"
        where = f'<div class="muted small">{_e(address)}</div>' if address else ""
        return (
            f'<tr data-session-id="{_e(info.session_id)}">'
            f'<td data-label="Device"><div class="device{known}" title="{_e(agent)}">'
            f"{_e(title)}</div>{where}</td>"
            f'<td data-label="Signed in" title="{_e(_iso(info.issued_at))}">'
            f"{_e(relative(info.issued_at, now))}</td>"
            f'<td data-label="Last active" title="{_e(_iso(active))}">'
            f"{_e(relative(active, now))}</td>"
            f'<td data-label="Expires" title="{_e(_iso(info.expires_at))}">'
            f"{_e(relative(info.expires_at, now))}</td>"
            f'<td data-label="Session id"><code>{_e(info.session_id)}</code></td>'
            f'<td class="actions"><form method="post" action="{_e(self._url("/revoke"))}">'
            f'{self._csrf_field()}<input type="hidden" name="user" value="{_e(user)}">'
            f'<input type="hidden" name="session_id" value="{_e(info.session_id)}">'
            '<button class="btn subtle" type="submit">Revoke</button></form></td></tr>'
        )

    def _events(self) -> str:
        return (
            '<aside class="card events-card"><div class="events-head"><h2>Live events</h2>'
            '<span class="muted small" id="events-state">connecting…</span></div>'
            '<ol class="events" id="events"><li class="events-empty">'
            "Sign-ins, sign-outs and expiries appear here as they happen.</li></ol></aside>"
        )

    def _confirm_all(self, user: str, count: int) -> str:
        back = self._url("/", user=user)
        return (
            '<div class="modal-backdrop"><div class="modal" role="dialog" aria-modal="true" '
            'aria-labelledby="confirm-title">'
            f'<h2 id="confirm-title">Sign {_e(user)} out everywhere?</h2>'
            f"<p>This ends all {count} live session{'s' if count != 1 else ''} of "
            f"<strong>{_e(user)}</strong> at once. They will have to sign in again on every "
            "device.</p>"
            f'<form method="post" action="{_e(self._url("/revoke-all"))}">{self._csrf_field()}'
            f'<input type="hidden" name="user" value="{_e(user)}">'
            f'<div class="modal-actions"><a class="btn subtle" href="{_e(back)}">Cancel</a>'
            '<button class="btn danger" id="confirm-revoke-all" type="submit">'
            "End every session</button></div></form></div></div>"
        )

    def message(self, status: int, heading: str, text: str) -> str:
        """A small page for an error (400, 404, 503)."""
        return self._document(
            self._header() + '<main class="wrap"><section class="card empty">'
            f'<div class="empty-icon" aria-hidden="true">{status}</div>'
            f"<h2>{_e(heading)}</h2><p>{_e(text)}</p>"
            f'<p><a class="btn subtle" href="{_e(self._url("/"))}">Back to the admin page</a></p>'
            "</section></main>"
        )
