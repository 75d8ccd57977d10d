"""The two gates in front of every admin route: ``authorize`` and the CSRF check."""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Authorize", "Csrf", "Guarded", "read_form"]

#: ``authorize(request) -> bool``, sync or async.
Authorize = Callable[[Request], bool | Awaitable[bool]]

CSRF_COOKIE = "rjwt_admin_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 16_384


class Guarded:
    """Pure ASGI: answers 403 to every HTTP or WebSocket request ``authorize`` refuses."""

    def __init__(self, app: ASGIApp, authorize: Authorize) -> None:
        self.app = app
        self.authorize = authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        verdict = self.authorize(Request(scope, receive))
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is True:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = PlainTextResponse("Forbidden", status_code=403)
        await response(scope, receive, send)


class Csrf:
    """A token per admin app instance, set in a cookie and echoed by every unsafe request.

    A page from another site can make the browser send the cookie, but cannot
    read the token to put it in the form field or the ``X-CSRF-Token`` header.
    """

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def valid(self, request: Request, sent: str | None) -> bool:
        """Whether the cookie and the field (or header) both carry this app's token."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        offered = sent if sent is not None else request.headers.get(CSRF_HEADER, "")
        expected = self.token.encode()
        return hmac.compare_digest(cookie.encode(), expected) and hmac.compare_digest(
            offered.encode("utf-8", "replace"), expected
        )


async def read_form(request: Request) -> dict[str, str] | None:
    """A small ``application/x-www-form-urlencoded`` body as a dict; None when it is not one."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        fields = parse_qs(text, keep_blank_values=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included: %FF is not UTF-8
        return None
    return {name: values[-1] for name, values in fields.items()}
