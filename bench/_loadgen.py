"""A bounded HTTP/1.1 load generator on asyncio streams, for machines without ``wrk``.

Run as its own process (``python -m bench._loadgen URL --connections 64
--seconds 5 --header 'Authorization: Bearer ...'``) so that it does not share
an interpreter with the server or the benchmark driver. Each connection is
one keep-alive socket sending GET requests back to back; the process prints
one JSON object: requests, errors (non-2xx, bad or lost connections), seconds,
p50/p99 latency in milliseconds.

Why not httpx: with 64 requests in flight its connection pool spends more
time than the server (about 60 requests/s on the machine of
docs/benchmarks.md, against 440 with one connection). A plain client that
writes a prepared request and reads ``Content-Length`` bytes keeps up with
the apps measured here, but it burns more CPU per request than wrk, CPU that
a small machine takes from the server; the report says which generator ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

from bench._common import event_loop_factory, resolve_loop

# Hard bounds, whatever the duration says.
MAX_REQUESTS = 5_000_000
MAX_SECONDS = 120.0
_IO_TIMEOUT_SECONDS = 10.0


async def _one_connection(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    budget: list[int],
    stats: dict[str, list[float]],
) -> int:
    """Send requests on one keep-alive connection until the deadline; return the errors."""
    errors = 0
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), _IO_TIMEOUT_SECONDS
        )
    except OSError:
        return 1
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            began = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IO_TIMEOUT_SECONDS)
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await asyncio.wait_for(reader.readexactly(length), _IO_TIMEOUT_SECONDS)
            stats["latency"].append(time.perf_counter() - began)
            if not 200 <= status < 300:
                errors += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        errors += 1
    finally:
        writer.close()
    return errors


async def load(
    url: str, connections: int, seconds: float, headers: dict[str, str]
) -> dict[str, float | int]:
    """Keep ``connections`` requests in flight for ``seconds``; return counts and latency."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    stats: dict[str, list[float]] = {"latency": []}
    budget = [MAX_REQUESTS]
    start = time.perf_counter()
    deadline = start + min(seconds, MAX_SECONDS)
    errors = await asyncio.gather(
        *(_one_connection(host, port, request, deadline, budget, stats) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    latencies = stats["latency"]
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": sum(errors),
        "seconds": elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


def main() -> None:
    """Parse the command line, run the load, print JSON."""
    parser = argparse.ArgumentParser(description="bounded HTTP/1.1 load generator")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    with asyncio.Runner(loop_factory=event_loop_factory(resolve_loop("auto"))) as runner:
        result = runner.run(load(args.url, args.connections, args.seconds, headers))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
