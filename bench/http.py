"""HTTP benchmark: requests per second of real uvicorn servers under a bounded load.

Each app of ``bench/http_apps.py`` runs in its own uvicorn process (one
worker, a free loopback port, uvloop and httptools when installed) and is
loaded with 64 connections for a fixed duration by ``wrk`` when it is on
PATH, else by ``bench/_loadgen.py`` (asyncio streams) in a separate process. Every
app gets the same token-carrying request (the bare apps ignore the token).
Rounds are interleaved over the apps; the report gives the median round's
requests per second, the spread, p50/p99 latency (median over rounds), each
app's ratio to the bare Starlette app and to its own bare counterpart (the
same framework without authentication).

Run alone with ``python bench/http.py`` (it starts its own redis-server), or
as part of ``python bench/run.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `python bench/http.py` puts bench/ first on sys.path, where this very
    # file would shadow the standard library's `http`: use the repository root.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._common import (
    Stats,
    format_table,
    human_rate,
    machine_info,
    package_versions,
    resolve_loop,
)
from bench._micro import SECRET, accepts_local_cache
from bench.http_apps import APPS
from redis_jwt.testing import RedisServer, free_port

__all__ = ["HttpResult", "HttpSettings", "format_http", "run_http"]

ROOT = Path(__file__).resolve().parents[1]
LABELS = {
    "bare": "bare Starlette",
    "fastapi": "bare FastAPI",
    "middleware": "Starlette + RedisJWTMiddleware",
    "middleware_cached": "Starlette + RedisJWTMiddleware (local_cache)",
    "fastapi_dependency": "FastAPI + require_session",
    "litestar": "bare Litestar",
    "litestar_plugin": "Litestar + RedisJWTPlugin",
    "fastapi_users": "FastAPI + fastapi-users (bearer, RedisStrategy)",
}
#: Each authenticated app's bare counterpart: the same framework and route, no authentication.
BARE = {
    "middleware": "bare",
    "middleware_cached": "bare",
    "fastapi_dependency": "fastapi",
    "litestar_plugin": "litestar",
    "fastapi_users": "fastapi",
}
#: The apps served in each round, in this order (each right after its bare counterpart).
ORDER = APPS
_START_SECONDS = 20.0
_STOP_SECONDS = 10.0
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m)\b")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Load shape and duration."""

    connections: int = 64
    rounds: int = 3
    round_seconds: float = 4.0
    warmup_seconds: float = 2.0
    loop: str = "auto"
    wrk_threads: int = 1
    load_generator: str = "auto"  # auto, wrk, python


@dataclass(frozen=True, slots=True)
class Load:
    """One load run against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(slots=True)
class HttpResult:
    """Every app's rounds, and how they were produced."""

    runs: dict[str, list[Load]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    generator: str = ""
    server: str = ""

    def rps(self, app: str) -> Stats | None:
        """Requests per second of ``app`` over the rounds, if it ran."""
        runs = self.runs.get(app)
        return Stats(tuple(r.rps for r in runs)) if runs else None

    def ratio(self, app: str, base: str = "bare") -> float | None:
        """Median rps of ``app`` over median rps of ``base``."""
        a, b = self.rps(app), self.rps(base)
        return a.median / b.median if a and b and b.median else None

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable form used by ``--json``."""
        apps: dict[str, Any] = {}
        for app, runs in self.runs.items():
            stats = self.rps(app)
            assert stats is not None
            apps[app] = {
                "label": LABELS[app],
                "rps": stats.as_dict(),
                "p50_ms": statistics.median(r.p50_ms for r in runs),
                "p99_ms": statistics.median(r.p99_ms for r in runs),
                "errors": sum(r.errors for r in runs),
                "ratio_to_bare": self.ratio(app),
                "bare_counterpart": BARE.get(app),
                "ratio_to_counterpart": self.ratio(app, BARE[app]) if app in BARE else None,
            }
        return {
            "generator": self.generator,
            "server": self.server,
            "apps": apps,
            "skipped": self.skipped,
        }


def _ms(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def parse_wrk(output: str) -> Load:
    """Read requests/s, p50/p99 and errors out of ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)[1])  # type: ignore[index]
    errors = 0
    if non2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(non2xx[1])
    if sockets := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in sockets.groups())
    return Load(rps=rps, p50_ms=p50, p99_ms=p99, errors=errors)


class Server:
    """One uvicorn process serving one app of ``bench/http_apps.py``, stopped by PID."""

    def __init__(self, app: str, redis_url: str, loop: str, http: str) -> None:
        self.app = app
        self.redis_url = redis_url
        self.loop = loop
        self.http = http
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix=f"bench-{app}-", suffix=".log")[1])

    @property
    def url(self) -> str:
        """Where the app answers."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        """The last lines uvicorn printed."""
        with contextlib.suppress(OSError):
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-15:])
        return ""

    def start(self) -> None:
        """Start uvicorn and wait (bounded) for ``/health``; retry on a port race."""
        for _attempt in range(3):
            self.port = free_port()
            env = {
                **os.environ,
                "BENCH_APP": self.app,
                "BENCH_REDIS_URL": self.redis_url,
                "BENCH_SECRET": SECRET,
            }
            with self._log.open("wb") as log:
                self.process = subprocess.Popen(
                    [
                        sys.executable, "-m", "uvicorn", "--factory",
                        "bench.http_apps:create_app",
                        "--host", "127.0.0.1", "--port", str(self.port),
                        "--loop", self.loop, "--http", self.http,
                        "--no-access-log", "--log-level", "warning",
                    ],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )  # fmt: skip
            if self._wait_ready():
                return
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        raise RuntimeError(f"uvicorn serving {self.app!r} did not start:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM the process by PID, then SIGKILL if it lingers; idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=_STOP_SECONDS)

    def remove_log(self) -> None:
        """Delete the log file."""
        with contextlib.suppress(OSError):
            self._log.unlink()


class LoadGenerator:
    """``wrk`` (preferred) or the asyncio fallback, always bounded in time."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        wrk = shutil.which("wrk")
        if settings.load_generator == "wrk" and wrk is None:
            raise SystemExit("--load-generator wrk: wrk is not on PATH (apt-get install wrk)")
        self.wrk = wrk if settings.load_generator in ("auto", "wrk") else None

    @property
    def name(self) -> str:
        """What the report prints."""
        if self.wrk is not None:
            version = subprocess.run(
                [self.wrk, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.split(" [")[0]
            return f"{version.strip()}, {self.settings.wrk_threads} thread(s)"
        return "bench/_loadgen.py (asyncio streams, separate process)"

    def run(self, url: str, headers: dict[str, str], seconds: float) -> Load:
        """Load ``url`` with the configured connections for ``seconds``."""
        conns = self.settings.connections
        header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
        if self.wrk is not None:
            out = subprocess.run(
                [
                    self.wrk, f"-t{self.settings.wrk_threads}", f"-c{conns}",
                    f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s",
                    *header_args, url,
                ],
                capture_output=True, text=True, timeout=seconds + 30, check=True,
            ).stdout  # fmt: skip
            return parse_wrk(out)
        header_args = [arg for k, v in headers.items() for arg in ("--header", f"{k}: {v}")]
        out = subprocess.run(
            [
                sys.executable, "-m", "bench._loadgen", url,
                "--connections", str(conns), "--seconds", str(seconds), *header_args,
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
        data = json.loads(out)
        return Load(
            rps=data["requests"] / data["seconds"],
            p50_ms=data["p50_ms"],
            p99_ms=data["p99_ms"],
            errors=data["errors"],
        )


async def _tokens(redis_url: str) -> dict[str, str]:
    """A redis-jwt token and a fastapi-users token, made the way each library makes them."""
    import redis.asyncio
    from fastapi_users.authentication import RedisStrategy

    from bench._rivals import BenchUser, make_users
    from redis_jwt import RedisJWT

    async with RedisJWT(secret=SECRET, redis_url=redis_url, ttl=3600) as auth:
        jwt_token = await auth.sign("http-user", data_token={"role": "user"})
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        strategy: RedisStrategy[BenchUser, Any] = RedisStrategy(client, lifetime_seconds=3600)
        fu_token = await strategy.write_token(make_users(1)[0])
    finally:
        await client.aclose()
    return {"redis_jwt": jwt_token, "fastapi_users": fu_token}


def _module_unavailable(module_name: str, attribute: str) -> str | None:
    """Why ``module_name.attribute`` cannot be served, or None when it can."""
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError) as exc:
        return f"{module_name} cannot be located: {exc}"
    if not found:
        return f"{module_name} is not installed"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        return f"{module_name} failed to import: {exc!r}"
    if not hasattr(module, attribute):
        return f"{module_name} has no {attribute}"
    return None


def plan_apps() -> tuple[list[str], dict[str, str]]:
    """The apps to serve, in :data:`ORDER`, and why the others are skipped."""
    skipped: dict[str, str] = {}
    if (reason := _module_unavailable("redis_jwt.starlette", "RedisJWTMiddleware")) is not None:
        skipped["middleware"] = skipped["middleware_cached"] = reason
    elif not accepts_local_cache():
        skipped["middleware_cached"] = "not available: RedisJWT does not accept local_cache"
    if (reason := _module_unavailable("redis_jwt.fastapi", "require_session")) is not None:
        skipped["fastapi_dependency"] = reason
    if (reason := _module_unavailable("litestar", "Litestar")) is not None:
        skipped["litestar"] = skipped["litestar_plugin"] = reason
    elif (reason := _module_unavailable("redis_jwt.litestar", "RedisJWTPlugin")) is not None:
        skipped["litestar_plugin"] = reason
    return [app for app in ORDER if app not in skipped], skipped


@contextlib.contextmanager
def _servers(
    apps: list[str], redis_url: str, loop: str, http: str, skipped: dict[str, str]
) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for app in apps:
            server = Server(app, redis_url, loop, http)
            try:
                server.start()
            except RuntimeError as exc:
                skipped[app] = str(exc)
                server.remove_log()
                continue
            started[app] = server
        yield started
    finally:
        for server in started.values():
            server.stop()
            server.remove_log()


def run_http(redis_url: str, settings: HttpSettings, progress: Callable[[str], None]) -> HttpResult:
    """Serve every app, load each one, and return the rounds."""
    loop = resolve_loop(settings.loop)
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    generator = LoadGenerator(settings)
    apps, skipped = plan_apps()
    result = HttpResult(skipped=skipped, generator=generator.name)
    result.server = f"uvicorn, 1 worker, loop={loop}, http={http}"
    tokens = asyncio.run(_tokens(redis_url))
    # The same request everywhere: the bare apps read (and ignore) the same bytes.
    headers = {app: {"Authorization": f"Bearer {tokens['redis_jwt']}"} for app in ORDER}
    headers["fastapi_users"] = {"Authorization": f"Bearer {tokens['fastapi_users']}"}
    with _servers(apps, redis_url, loop, http, skipped) as servers:
        ready: list[str] = []
        for app, server in servers.items():
            # One request first: measuring a stream of 401s would say nothing.
            probe = httpx.get(f"{server.url}/", headers=headers[app], timeout=5.0)
            if probe.status_code != 200:
                skipped[app] = f"GET / answered {probe.status_code}: {probe.text[:200]}"
                continue
            progress(f"http warm-up: {LABELS[app]}")
            generator.run(f"{server.url}/", headers[app], settings.warmup_seconds)
            ready.append(app)
        for r in range(settings.rounds):
            progress(f"http round {r + 1}/{settings.rounds}")
            for app in ready:
                load = generator.run(f"{servers[app].url}/", headers[app], settings.round_seconds)
                result.runs.setdefault(app, []).append(load)
    return result


def format_http(result: HttpResult) -> str:
    """The HTTP table, as printed and as pasted in docs/benchmarks.md."""
    rows = []
    for app, runs in result.runs.items():
        stats = result.rps(app)
        assert stats is not None
        ratio = result.ratio(app)
        base = BARE.get(app)
        own = result.ratio(app, base) if base is not None else None
        rows.append(
            [
                LABELS[app],
                human_rate(stats.median),
                f"{human_rate(stats.low)}-{human_rate(stats.high)}",
                f"{statistics.median(r.p50_ms for r in runs):.2f}",
                f"{statistics.median(r.p99_ms for r in runs):.2f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if own is None or base is None else f"{own:.2f}x {LABELS[base]}",
                str(sum(r.errors for r in runs)),
            ]
        )
    headers = ["app", "req/s", "min-max", "p50 ms", "p99 ms", "x bare Starlette"]
    headers += ["x its bare app", "errors"]
    lines = [format_table(headers, rows)]
    lines += [f"- skipped {LABELS[app]}: {why}" for app, why in result.skipped.items()]
    return "\n".join(lines)


def main() -> None:
    """Run the HTTP benchmark alone, on a redis-server of its own."""
    parser = argparse.ArgumentParser(description="redis-jwt HTTP benchmark")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="duration of one round")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--load-generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args()
    settings = http_settings(args)
    with RedisServer() as server:
        result = run_http(server.url, settings, lambda msg: print(f"  .. {msg}", flush=True))
        print(f"\nredis-server {'.'.join(map(str, server.version))}; {result.server}")
    print(
        f"load: {result.generator}, {settings.connections} connections, "
        f"{settings.rounds} x {settings.round_seconds:g} s\n"
    )
    print(format_http(result))
    if args.json is not None:
        payload = {
            "machine": machine_info(),
            "versions": package_versions(),
            "http": result.as_dict(),
        }
        args.json.write_text(json.dumps(payload, indent=2))


def http_settings(args: argparse.Namespace) -> HttpSettings:
    """Settings from parsed ``--quick``/``--rounds``/``--seconds``/``--loop``/... options."""
    base = (
        HttpSettings(rounds=1, round_seconds=1.0, warmup_seconds=1.0)
        if args.quick
        else HttpSettings()
    )
    return HttpSettings(
        connections=base.connections,
        rounds=args.rounds or base.rounds,
        round_seconds=args.seconds or base.round_seconds,
        warmup_seconds=base.warmup_seconds,
        loop=args.loop,
        load_generator=args.load_generator,
    )


if __name__ == "__main__":
    main()
