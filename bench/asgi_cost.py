"""CPU time per request of the HTTP benchmark's apps, called in-process (no server, no network).

The HTTP benchmark's rates include uvicorn, the sockets and the load
generator, all sharing the machine's cores. This calls each ASGI app of
``bench/http_apps.py`` directly with the request the load generator sends (the
same ``Authorization: Bearer`` header for every app), 64 requests at a time, and
reports the CPU microseconds per request (``time.process_time``), the best of
several rounds: what the app itself, adapters included, costs::

    python bench/asgi_cost.py
    python bench/asgi_cost.py --apps bare,middleware_cached --requests 5000

It starts its own ``redis-server`` on a free loopback port.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `python bench/asgi_cost.py` puts bench/ first on sys.path, where
    # bench/http.py would shadow the standard library's `http`.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import os
import time
from typing import Any

from bench._common import event_loop_factory, resolve_loop
from bench._micro import SECRET
from bench.http import _tokens
from bench.http_apps import APPS, create_app
from redis_jwt.testing import RedisServer

CONCURRENCY = 64
ROUNDS = 5


async def _cost(name: str, redis_url: str, token: str, requests: int) -> float:
    """The best round's CPU µs per request of app ``name``."""
    os.environ.update(BENCH_APP=name, BENCH_REDIS_URL=redis_url, BENCH_SECRET=SECRET)
    app = create_app()
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    async def lifespan_send(message: dict[str, Any]) -> None:
        replies.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    running = asyncio.ensure_future(app(scope, lifespan.get, lifespan_send))  # type: ignore[arg-type]
    await lifespan.put({"type": "lifespan.startup"})
    for _ in range(500):  # bounded: the app's startup (RedisJWT.open)
        if replies:
            break
        await asyncio.sleep(0.01)
    if not replies or replies[0]["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"{name}: the app did not start: {replies}")
    headers = [
        (b"host", b"127.0.0.1"),
        (b"user-agent", b"asgi-cost"),
        (b"authorization", b"Bearer " + token.encode()),
    ]
    request = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def http_scope() -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": list(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": state.copy(),
        }

    async def one() -> None:
        await app(http_scope(), receive, send)  # type: ignore[arg-type]

    async def batch(count: int) -> None:
        for _ in range(count // CONCURRENCY):
            await asyncio.gather(*(one() for _ in range(CONCURRENCY)))

    try:
        await batch(1000)  # warm-up
        best = float("inf")
        for _ in range(ROUNDS):
            started = time.process_time()
            await batch(requests)
            done = requests // CONCURRENCY * CONCURRENCY
            best = min(best, (time.process_time() - started) / done * 1e6)
        if set(statuses) != {200}:
            raise RuntimeError(f"{name}: answered {sorted(set(statuses))}, not only 200")
        return best
    finally:
        await lifespan.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(running, 10)


async def _main(redis_url: str, apps: list[str], requests: int) -> None:
    token = (await _tokens(redis_url))["redis_jwt"]
    bare = None
    print("| app | CPU µs / request | x bare Starlette's cost |")
    print("| --- | ---: | ---: |")
    for name in apps:
        cost = await _cost(name, redis_url, token, requests)
        if name == "bare":
            bare = cost
        ratio = f"{cost / bare:.2f}x" if bare else "-"
        print(f"| {name} | {cost:.1f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(a for a in APPS if a != "fastapi_users")
    parser.add_argument("--apps", default=default, help="apps of bench/http_apps.py")
    parser.add_argument("--requests", type=int, default=6400, help="requests per round")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    apps = [a for a in args.apps.split(",") if a]
    unknown = sorted(set(apps) - set(APPS))
    if unknown:
        parser.error(f"unknown apps: {', '.join(unknown)} (known: {', '.join(APPS)})")
    with (
        RedisServer() as server,
        asyncio.Runner(loop_factory=event_loop_factory(resolve_loop(args.loop))) as runner,
    ):
        runner.run(_main(server.url, apps, max(CONCURRENCY, min(args.requests, 100_000))))


if __name__ == "__main__":
    main()
