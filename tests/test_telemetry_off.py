"""Telemetry that is off costs nothing: without the API, and with the API but no SDK.

Each case runs in a fresh interpreter: the SDK's providers are global to a
process, and the telemetry tests of this process install one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from redis_jwt.testing import RedisServer

from .conftest import SECRET


def _run(script: str, redis_url: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), redis_url, SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


WITHOUT_API = """
import asyncio, json, sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
from redis_jwt import RedisJWT

async def main():
    async with RedisJWT(secret=sys.argv[2], redis_url=sys.argv[1]) as auth:
        token = await auth.sign("u")
        session = await auth.verify(token)
        ended = await auth.destroy(token)
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry."))
    print(json.dumps({"user": session.user_id, "ended": ended, "loaded": loaded}))

asyncio.run(main())
"""

WITH_API_THEN_SDK = """
import asyncio, json, sys
from redis_jwt import RedisJWT

async def main():
    before = RedisJWT(secret=sys.argv[2], redis_url=sys.argv[1])
    await before.open()  # no SDK yet: telemetry is off for this instance
    token = await before.sign("u")

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    await before.verify(token)
    spans_before = len(exporter.get_finished_spans())
    async with RedisJWT(secret=sys.argv[2], redis_url=sys.argv[1]) as after:
        await after.verify(token)
    await before.aclose()
    names = [span.name for span in exporter.get_finished_spans()]
    print(json.dumps({
        "spans_before": spans_before,
        "names": names,
    }))

asyncio.run(main())
"""


def test_the_core_works_without_the_opentelemetry_api(redis_url: str) -> None:
    assert _run(WITHOUT_API, redis_url) == {"user": "u", "ended": True, "loaded": []}


def test_with_the_api_and_no_sdk_nothing_is_recorded_until_an_instance_opens_with_one(
    redis_server: RedisServer,
) -> None:
    result = _run(WITH_API_THEN_SDK, redis_server.url)
    # Decided at open: the instance opened before the SDK stays silent.
    assert result["spans_before"] == 0
    assert result["names"] == ["redis_jwt.redis", "redis_jwt.verify"]
