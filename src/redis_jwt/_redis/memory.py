"""What the server does when memory runs out: its ``maxmemory-policy``.

Read from ``INFO memory`` (the ``maxmemory_policy`` field), which needs no
``CONFIG`` permission, so managed services that refuse ``CONFIG`` still
answer. On a Cluster every primary is asked: one that evicts is enough.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from .store import Store

__all__ = ["evicting_policy"]

#: Policies that can drop keys of this library: ``allkeys-*`` any key, ``volatile-*``
#: any key with an expiry, which every session key, index and schedule has.
_EVICTING = ("allkeys-", "volatile-")


async def evicting_policy(store: Store) -> str | None:
    """The first ``maxmemory-policy`` found that can evict keys, or None.

    Raises:
        StoreError: when Redis fails or refuses ``INFO``.
    """
    client: Any = store.client
    if isinstance(client, RedisCluster):
        replies = await store.run(client.info("memory", target_nodes=RedisCluster.PRIMARIES))
        # One primary answers with its own dict; several with one dict per node.
        infos = [replies] if "maxmemory_policy" in replies else list(replies.values())
    else:
        infos = [await store.info("memory")]
    for info in infos:
        policy = info.get("maxmemory_policy") if isinstance(info, dict) else None
        if isinstance(policy, bytes):
            policy = policy.decode("utf-8", "replace")
        if isinstance(policy, str) and policy.startswith(_EVICTING):
            return policy
    return None
