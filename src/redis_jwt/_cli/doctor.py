"""``redis-jwt doctor``: is this Redis fit to keep sessions? Each check: verdict, detail, fix.

Exit 0 when every check is ``ok`` or ``skipped``, 1 when one found a problem,
2 when Redis cannot be reached at all.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster

from ..errors import StoreError
from ._acl import AclPlan, check_acl
from ._checks import (
    Check,
    check_clock,
    check_connectivity,
    check_eviction_policy,
    check_keyspace_events,
    check_memory_headroom,
    check_persistence,
    check_version,
)
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_UNREACHABLE,
    CommandError,
    Options,
    Style,
    build_auth,
    load_settings,
    namespace_of,
    print_json,
    redacted,
    redis_url,
)
from ._nodes import Node, client_kwargs, close_nodes, node_clients, parse_sentinel_url
from ._topology import check_cluster, check_sentinel

__all__ = ["command"]

_FAILURES = (rex.RedisError, rex.RedisClusterException, OSError, TimeoutError)
_CLUSTER_CHECKS = ("cluster_slots", "cluster_replicas")
_SENTINEL_CHECKS = ("sentinel_quorum", "sentinel_replicas")
_STATUS_STYLE = {"ok": ("green",), "problem": ("red", "bold"), "skipped": ("yellow",)}


async def _guard(name: str, run: Callable[[], Awaitable[list[Check]]]) -> list[Check]:
    """Run one check; a refusal or a failure of Redis becomes its verdict, not a crash."""
    try:
        return await run()
    except rex.NoPermissionError as exc:
        return [
            Check(
                name,
                "skipped",
                f"not allowed for this user ({exc})",
                "run doctor as an administrator",
            )
        ]
    except rex.ResponseError as exc:
        return [Check(name, "problem", f"Redis refused the check: {exc}", None)]
    except _FAILURES as exc:
        return [
            Check(
                name,
                "problem",
                f"Redis failed during the check: {exc}",
                "check the server's health",
            )
        ]


def _one(check: Callable[[], Awaitable[Check]]) -> Callable[[], Awaitable[list[Check]]]:
    async def run() -> list[Check]:
        return [await check()]

    return run


async def diagnose(options: Options) -> tuple[str, list[Check]]:
    """Run every check; return the kind of deployment and the verdicts."""
    settings = load_settings()
    url = redis_url(settings, options)
    auth = build_auth(settings, options)
    async with auth:
        try:
            await auth.info("server")  # not ping(): it answers False, without the reason
        except (StoreError, rex.RedisClusterException) as exc:
            reason = str(exc).splitlines()[0].removeprefix("Redis is unavailable: ")
            raise _UnreachableError(url, reason) from None
        layout, prefix = namespace_of(auth)
        client = auth.redis
        nodes: list[Node] = node_clients(client)
        sentinel = parse_sentinel_url(url)
        kind = (
            "cluster"
            if isinstance(client, RedisCluster)
            else "sentinel"
            if sentinel
            else "standalone"
        )
        plan = AclPlan(
            prefix=prefix,
            layout=layout,
            listen=settings.listen or settings.kea,
            kea=settings.kea,
            local_cache=settings.local_cache,
            wait_replicas=settings.wait_replicas > 0,
        )
        checks: list[Check] = []
        try:
            steps: list[tuple[str, Callable[[], Awaitable[list[Check]]]]] = [
                ("connectivity", _one(lambda: check_connectivity(nodes))),
                ("server_version", _one(lambda: check_version(nodes))),
                ("eviction_policy", _one(lambda: check_eviction_policy(nodes))),
                ("memory_headroom", _one(lambda: check_memory_headroom(nodes))),
                ("persistence", _one(lambda: check_persistence(nodes))),
                ("keyspace_events", _one(lambda: check_keyspace_events(nodes, settings.kea))),
                ("acl", _one(lambda: check_acl(nodes, plan))),
                ("clock_skew", _one(lambda: check_clock(nodes))),
            ]
            if kind == "cluster":
                steps.append(("cluster_slots", lambda: check_cluster(nodes)))
            if sentinel is not None:
                kwargs = client_kwargs(client)
                steps.append(("sentinel_quorum", lambda: check_sentinel(sentinel, kwargs)))
            for name, step in steps:
                checks += await _guard(name, step)
        finally:
            await close_nodes(nodes)
    if kind != "cluster":
        checks += [Check(n, "skipped", "not a Redis Cluster") for n in _CLUSTER_CHECKS]
    if sentinel is None:
        checks += [Check(n, "skipped", "not a redis+sentinel:// URL") for n in _SENTINEL_CHECKS]
    return kind, checks


class _UnreachableError(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot connect to Redis at {redacted(url)}: {reason}")


def _render(url: str, kind: str, checks: list[Check]) -> None:
    style = Style(sys.stdout)
    print(style(f"redis-jwt doctor: {redacted(url)} ({kind})", "bold"))
    width = max(len(check.name) for check in checks)
    for check in checks:
        status = style(f"{check.status:<8}", *_STATUS_STYLE[check.status])
        print(f"  {status} {check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "ok":
            print(f"  {'':<8} {'':<{width}}  {style('fix: ' + check.fix, 'cyan')}")
    problems = sum(check.status == "problem" for check in checks)
    summary = (
        "healthy" if not problems else f"{problems} problem{'s' if problems > 1 else ''} found"
    )
    print(style(summary, "green" if not problems else "red"), flush=True)


async def command(options: Options) -> int:
    """Run ``redis-jwt doctor``."""
    url = redis_url(load_settings(), options)
    try:
        kind, checks = await diagnose(options)
    except _UnreachableError as exc:
        if options.json:
            print_json(
                {
                    "ok": False,
                    "checks": [
                        Check(
                            "connectivity",
                            "problem",
                            str(exc),
                            "start Redis or fix REDIS_JWT_REDIS_URL / --url",
                        ).as_json()
                    ],
                }
            )
        raise CommandError(str(exc), EXIT_UNREACHABLE) from None
    ok = not any(check.status == "problem" for check in checks)
    if options.json:
        print_json({"ok": ok, "checks": [check.as_json() for check in checks]})
    else:
        _render(url, kind, checks)
    return EXIT_OK if ok else EXIT_PROBLEM
