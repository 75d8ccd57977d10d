"""``redis-jwt events``: follow live events, one line each, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from .. import Event
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Options,
    Style,
    build_auth,
    load_settings,
    namespace_of,
    redacted,
    redis_url,
    require_redis,
)

__all__ = ["command", "event_json"]

_KIND_STYLE = {
    "created": ("green",),
    "extended": ("cyan",),
    "destroyed": ("yellow",),
    "expired": ("yellow",),
    "error": ("red",),
    "disconnected": ("red",),
}


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object of one event (``error`` as its message)."""
    return {
        "kind": event.kind,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "at": event.at.isoformat(),
        "reason": event.reason,
        "error": None if event.error is None else str(event.error),
    }


def _line(event: Event, style: Style) -> str:
    kind = style(f"{event.kind:<12}", *_KIND_STYLE.get(event.kind, ()))
    fields = [event.at.strftime("%H:%M:%S.%f")[:-3], kind, event.user_id or "-"]
    fields.append(event.session_id or "-")
    if event.reason:
        fields.append(f"({event.reason})")
    if event.error is not None:
        fields.append(str(event.error).splitlines()[0] if str(event.error) else "")
    return " ".join(fields).rstrip()


async def command(options: Options) -> int:
    """Run ``redis-jwt events``: print each event as it comes, flushed, until stopped."""
    settings = load_settings()
    url = redis_url(settings, options)
    auth = build_auth(settings, options, listen=True, kea=settings.kea)
    if namespace_of(auth)[0] != "v1":
        raise CommandError(
            "events need layout v1 (REDIS_JWT_LAYOUT=redis-jwt has none)", EXIT_USAGE
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (RuntimeError, ValueError):  # not the main thread: Ctrl-C stays Python's
            continue
        handled.append(signum)
    style = Style(sys.stdout)
    # Subscribed before opening, so that ``connected`` and ``ready`` are shown too.
    subscription = auth.events.subscribe()
    try:
        async with auth:
            await require_redis(auth, url)
            print(
                f"redis-jwt: following events on {redacted(url)} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            stopped = asyncio.ensure_future(stop.wait())
            try:
                while not stop.is_set():
                    following = asyncio.ensure_future(anext(subscription))
                    await asyncio.wait((following, stopped), return_when=asyncio.FIRST_COMPLETED)
                    if not following.done():
                        following.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await following
                        break
                    try:
                        event = following.result()
                    except StopAsyncIteration:
                        break
                    if options.json:
                        text = json.dumps(event_json(event), ensure_ascii=False)
                    else:
                        text = _line(event, style)
                    print(text, flush=True)
            finally:
                stopped.cancel()
    finally:
        await subscription.aclose()
        for signum in handled:
            loop.remove_signal_handler(signum)
    return EXIT_OK
