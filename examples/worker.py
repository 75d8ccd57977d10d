"""An async worker that checks the session behind every job before running it.

Jobs carry the token of the user who queued them. A worker verifies it when it
picks the job up, so a job queued before a logout (or a revoke, or "log out
everywhere") is refused, not run with powers the user has withdrawn.

    python examples/worker.py          # run the scenario, checking itself (exit 1 on a failure)

It uses ``REDIS_URL`` when set, else starts a throwaway redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
from dataclasses import dataclass

from redis_jwt import RedisJWT, errors
from redis_jwt.testing import RedisServer

MAX_ATTEMPTS = 3  # a job whose check keeps failing on Redis is given up, not retried forever


@dataclass(frozen=True)
class Job:
    """A unit of work, queued on behalf of the holder of ``token``."""

    name: str
    token: str
    attempt: int = 1


async def worker(auth: RedisJWT, jobs: asyncio.Queue[Job | None], outcomes: dict[str, str]) -> None:
    """Run jobs until a ``None`` arrives; record each job's outcome."""
    while (job := await jobs.get()) is not None:
        try:
            session = await auth.verify(job.token)
        except errors.AuthenticationError as exc:
            outcomes[job.name] = f"refused ({type(exc).__name__})"
        except errors.StoreError:
            if job.attempt < MAX_ATTEMPTS:  # Redis trouble is temporary: requeue, bounded
                await asyncio.sleep(0.2 * job.attempt)
                jobs.put_nowait(Job(job.name, job.token, job.attempt + 1))
            else:
                outcomes[job.name] = "gave up: Redis unavailable"
        else:
            outcomes[job.name] = f"ran for {session.user_id}"
        finally:
            jobs.task_done()
    jobs.task_done()


async def scenario(redis_url: str) -> dict[str, str]:
    """Queue jobs for two users, revoke one user's session midway, and report."""
    auth = RedisJWT(secret=secrets.token_urlsafe(48), redis_url=redis_url, ttl="10 minutes")
    async with auth:
        alice = await auth.sign("alice")
        bob = await auth.sign("bob")
        jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        outcomes: dict[str, str] = {}
        running = asyncio.create_task(worker(auth, jobs, outcomes))

        jobs.put_nowait(Job("alice-report", alice))
        jobs.put_nowait(Job("bob-export", bob))
        await jobs.join()

        # Alice logs out while another of her jobs is still waiting in a queue.
        await auth.destroy(alice)
        jobs.put_nowait(Job("alice-late-report", alice))
        jobs.put_nowait(Job("forged", alice[:-4] + "AAAA"))
        jobs.put_nowait(Job("bob-import", bob))
        jobs.put_nowait(None)
        async with asyncio.timeout(10):
            await running
    return outcomes


def main() -> int:
    """Run the scenario and check its outcome."""
    parser = argparse.ArgumentParser(description="redis-jwt worker example")
    parser.add_argument(
        "--check", action="store_true", help="accepted for symmetry: it always checks"
    )
    parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = os.environ.get("REDIS_URL")
        if not url:
            url = stack.enter_context(RedisServer()).url
            print(f"started a throwaway redis-server at {url}")
        outcomes = asyncio.run(scenario(url))
    for name, outcome in outcomes.items():
        print(f"  {name:<18} {outcome}")
    expected = {
        "alice-report": "ran for alice",
        "bob-export": "ran for bob",
        "alice-late-report": "refused (SessionNotFound)",
        "forged": "refused (InvalidToken)",
        "bob-import": "ran for bob",
    }
    if outcomes != expected:
        print(f"worker FAILED: expected {expected}", file=sys.stderr)
        return 1
    print("worker: the revoked token was refused; all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
