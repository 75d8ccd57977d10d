"""Choosing and building the session backend of a ``RedisJWT`` (one place, at construction)."""

from __future__ import annotations

from ._activity import ActivityClock
from ._backend import SessionBackend
from ._layout import Layout
from ._lifecycle import Lifecycle
from ._local_cache import LocalCache
from ._node_sessions import NodeSessions, check_node_client
from ._options import Resolved
from ._pairs import PairIssuer
from ._redis.store import AnyRedis
from ._redis.v1_store import V1Store
from ._tokens import TokenCodec
from ._v1_sessions import V1Sessions

__all__ = ["build_backend"]


def build_backend(
    resolved: Resolved, life: Lifecycle, client: AnyRedis, layout: Layout
) -> tuple[SessionBackend, LocalCache | None]:
    """The backend of the configured layout, and the local cache when one is on."""
    options = resolved.options
    if options.layout == "redis-jwt":
        check_node_client(client)
        node = NodeSessions(
            life.store,
            resolved.keys,
            resolved.rules,
            sliding=bool(options.sliding),
            multiple=options.multiple,
            leeway_seconds=resolved.leeway_seconds,
            max_token_bytes=options.max_token_bytes,
            emit=life.feed.emit,
        )
        return node, None
    store = V1Store(life.store, layout, origin=life.origin, scheduling=resolved.listening)
    cache = None
    if options.local_cache:
        cache = LocalCache(store, client, life.tasks, timeout_seconds=options.timeout_seconds)
    codec = TokenCodec(
        resolved.keys,
        lifetime_limit_seconds=resolved.rules.ceiling_seconds,
        leeway_seconds=resolved.leeway_seconds,
        issuer=options.issuer,
        audience=options.audience,
        max_token_bytes=options.max_token_bytes,
    )
    v1 = V1Sessions(
        store=store,
        codec=codec,
        rules=resolved.rules,
        sliding=bool(options.sliding),
        limit=resolved.limit,
        cache=cache,
        emit=life.feed.emit,
        unschedule=life.unscheduler.add,
        wait_replicas=options.wait_replicas,
        wait_timeout_ms=resolved.wait_timeout_ms,
        pairs=PairIssuer(codec, resolved.pairs),
        activity=ActivityClock(resolved.activity_resolution_seconds)
        if options.track_activity
        else None,
        spawn=life.tasks.spawn,
    )
    return v1, cache
