"""Every use of a dependency's private attribute, in one place.

Each function here reaches into redis-py, PyJWT or pydantic where their public
API offers no way to do what the library needs. Each names the releases it was
written for, and tests/test_compat.py checks each one against the installed
release: when a release changes what is reached into, that test fails (the
library must never become silently slower or wrong).

Supported (declared) ranges: redis-py 5.2.1 - 8.x, PyJWT 2.13 - 2.15,
pydantic 2.6 - 2.14.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import jwt
from pydantic import BaseModel
from redis import exceptions as rex
from redis._parsers import hiredis as redis_hiredis
from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

__all__ = [
    "INTERNAL_CONNECTION_KWARGS",
    "NAMED_CHECKOUT",
    "asyncio_transport",
    "buffered_replies",
    "checkout",
    "close_sentinels",
    "direct_construction_matches",
    "direct_constructor",
    "fast_segment_decoding",
    "hiredis_parser",
    "instance_jws",
    "refresh_cluster_slots",
    "side_connection_kwargs",
    "untimed_reads",
]

M = TypeVar("M", bound=BaseModel)

# -- redis-py --------------------------------------------------------------

# redis-py 5.2 wants a command name to check a connection out; 5.3+ warns about one.
NAMED_CHECKOUT = (
    inspect.signature(ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
)


def checkout(pool: Any) -> Awaitable[Any]:
    """Check a connection out of a redis-py async pool (redis-py 5.2 - 8.x)."""
    if NAMED_CHECKOUT:
        return pool.get_connection("PIPELINE")  # type: ignore[no-any-return]
    return pool.get_connection()  # type: ignore[no-any-return]


class untimed_reads:  # noqa: N801 - used like a function: ``with untimed_reads(conn):``
    """Read replies (or write) without redis-py's per-call timeout (redis-py 5.2 - 8.x).

    redis-py wraps every ``read_response`` in a timeout of its own, and runs
    every ``send_packed_command`` in a task of its own (``asyncio.wait_for``),
    when the connection has a ``socket_timeout``; the caller's deadline bounds
    the whole batch instead. The connection must be the caller's alone meanwhile. (A
    class, not a generator: it runs once per pipelined batch.)
    """

    __slots__ = ("_conn", "_timeout")

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._timeout = conn.socket_timeout

    def __enter__(self) -> None:
        self._conn.socket_timeout = None

    def __exit__(self, *exc_info: object) -> None:
        self._conn.socket_timeout = self._timeout


def hiredis_parser(conn: Any) -> Any | None:
    """The connection's hiredis parser (redis-py 6.2 - 8.x); None with the pure-Python parser.

    Only redis-py's own ``_AsyncHiredisParser`` (not a subclass, which may read
    differently), connected, holding its ``hiredis.Reader``.
    """
    parser = getattr(conn, "_parser", None)
    if (
        type(parser) is redis_hiredis._AsyncHiredisParser
        and getattr(parser, "_reader", None) is not None
    ):
        return parser
    return None


async def buffered_replies(conn: Any, parser: Any, replies: list[Any], count: int) -> None:
    """Append to ``replies``, up to ``count`` in all, the replies ``parser`` already holds.

    ``parser`` is ``conn``'s (:func:`hiredis_parser`). Each reply is what
    ``conn.read_response()`` would give (redis-py 6.2 - 8.x: its hiredis parser's
    ``read_response`` without the socket read), except that an error reply is
    returned in its place instead of raised; without redis-py's per-reply work
    (timeout setup, the error text of the address). Stops at the first reply
    not yet received: the caller reads it with ``conn.read_response()``, as it
    does when this parser is disconnected. A reply that breaks the connection
    (``LOADING``, a protocol error) disconnects it and is raised, as there.
    """
    reader = parser._reader
    push = parser._hiredis_PushNotificationType
    not_enough = redis_hiredis.NOT_ENOUGH_DATA
    start = len(replies)
    try:
        while len(replies) < count and parser._connected:
            response = reader.gets()
            if response is not_enough:
                break
            if isinstance(response, rex.ConnectionError):
                raise response
            if push is not None and isinstance(response, push):
                await parser.handle_push_response(response)  # and read on, as redis-py does
                continue
            if (
                isinstance(response, list)
                and response
                and isinstance(response[0], rex.ConnectionError)
            ):
                raise response[0]
            if isinstance(response, rex.ResponseError):
                response.__suppress_context__ = True  # as redis-py's ``raise ... from None``
            replies.append(response)
    except OSError as exc:  # from a push handler, as conn.read_response() reports it
        await conn.disconnect(nowait=True)
        raise rex.ConnectionError(
            f"Error while reading from {conn._host_error()} : {exc.args}"
        ) from exc
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    if len(replies) > start and conn.health_check_interval:
        conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval


#: Keyword arguments a pool hands its connections that are internal to
#: redis-py (6.x - 8.x) and refused by a connection built on its own.
INTERNAL_CONNECTION_KWARGS = (
    "maint_notifications_pool_handler",
    "himport_registry",
    "event_dispatcher",
)


def side_connection_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A pool's connection kwargs, fit to build one connection outside the pool."""
    for name in INTERNAL_CONNECTION_KWARGS:
        kwargs.pop(name, None)
    return kwargs


def asyncio_transport(conn: AbstractConnection) -> asyncio.Transport:
    """The asyncio transport under an open redis-py connection (``conn._writer``).

    Raises:
        RuntimeError: when this redis-py (or uvloop) keeps no asyncio transport.
    """
    writer = getattr(conn, "_writer", None)
    transport: Any = getattr(writer, "transport", None)
    if not hasattr(transport, "set_protocol"):  # uvloop's transports are not asyncio's
        raise RuntimeError("this redis-py keeps no asyncio transport to take over")
    return transport  # type: ignore[no-any-return]


async def refresh_cluster_slots(client: RedisCluster) -> None:
    """Re-read ``CLUSTER SLOTS`` (redis-py 5.2 - 8.x: ``nodes_manager.initialize``).

    ``RedisCluster.initialize()`` is a no-op once done; the nodes manager is
    what re-reads the slot map. It does so under the client's own
    initialisation lock (``RedisCluster._lock``), never beside a reload of
    redis-py's: up to redis-py 7.1 a reload replaces every node, so one running
    alongside would ask nodes already replaced, whose connections nobody closes.
    """
    await client.initialize()
    if client._lock is None:  # made on first use, as redis-py does
        client._lock = asyncio.Lock()
    async with client._lock:
        await client.nodes_manager.initialize()


async def close_sentinels(client: object) -> None:
    """Close the sentinel links of a client built by ``Sentinel.master_for`` (redis-py 5.2 - 8.x).

    The pool of such a client holds the ``Sentinel`` (``sentinel_manager``),
    which closing the client leaves open.
    """
    pool = getattr(client, "connection_pool", None)
    sentinels = getattr(pool, "sentinel_manager", None)
    if sentinels is None:
        return
    if hasattr(sentinels, "aclose"):  # redis-py 8.1+
        await sentinels.aclose()
        return
    # Before redis-py 8.1 there is no Sentinel.aclose; its sentinel clients are in ``sentinels``.
    for sentinel in sentinels.sentinels:
        await sentinel.aclose()


# -- PyJWT -----------------------------------------------------------------


def instance_jws(instance: jwt.PyJWT) -> jwt.PyJWS | None:
    """The ``PyJWS`` of its own that a ``PyJWT`` instance holds (PyJWT 2.10 - 2.15).

    None when this PyJWT shares the module-wide ``PyJWS`` between instances:
    registering algorithms on it would then change every user of PyJWT.
    """
    jws = getattr(instance, "_jws", None)
    if not isinstance(jws, jwt.PyJWS) or jws is getattr(jwt.api_jws, "_jws_global_obj", None):
        return None
    return jws


# PyJWT 2.14 - 2.15 decode each of a token's three segments with the private
# static ``PyJWS._decode_base64url_segment(segment, name)``, which first tests
# every byte against the base64url alphabet in a Python generator, then
# encodes the result again to check that it was the canonical spelling: about
# 10 µs a segment, three per token. The decoder below answers the one case it
# accepts (no padding, only alphabet bytes, a possible length, canonical) with
# the same bytes in under 1 µs: the alphabet tested by one regular expression,
# the canonical spelling by the last character (the bits it carries beyond the
# data must be zero), the bytes by ``binascii``. Every other segment goes to
# PyJWT's own function, so every refusal is PyJWT's own.
_SEGMENT_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# By length % 4 (1 is impossible): the padding binascii needs, and the last
# characters of a canonical segment (None: every one; 2 and 3 characters of
# the last group leave 4 and 2 bits unused, which must be zero).
_PADDING = (b"", b"", b"==", b"=")
_CANONICAL_LAST: tuple[frozenset[int] | None, ...] = (
    None,
    frozenset(),
    frozenset(_BASE64URL[::16]),
    frozenset(_BASE64URL[::4]),
)
_SEGMENT_DECODER = "_decode_base64url_segment"
_SAMPLE_COMPACT = (  # a JWS of the claims {"sub": "u"}, only parsed (its key is irrelevant)
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1In0."
    "ZIjqc3XjDV4RgKOZpF3PuqKBNPXOfRBmprp13hGvuLk"
)


def _segment_decoder(original: Callable[[bytes, str], bytes]) -> Callable[[bytes, str], bytes]:
    fullmatch = _SEGMENT_ALPHABET.fullmatch
    a2b = binascii.a2b_base64
    standard, padding, canonical_last = _TO_STANDARD, _PADDING, _CANONICAL_LAST

    def decode_segment(segment: bytes, name: str) -> bytes:
        rest = len(segment) % 4
        last = canonical_last[rest]
        if rest != 1 and fullmatch(segment) is not None and (last is None or segment[-1] in last):
            return a2b(segment.translate(standard) + padding[rest])
        return original(segment, name)

    return decode_segment


@functools.cache
def _segment_decoding_is_reachable() -> bool:
    """Whether ``PyJWS._load`` decodes its three segments through the private function."""
    original = getattr(jwt.PyJWS, _SEGMENT_DECODER, None)
    if not callable(original):
        return False
    seen: list[str] = []
    jws = jwt.PyJWS()

    def spy(segment: bytes, name: str) -> bytes:
        seen.append(name)
        return original(segment, name)  # type: ignore[no-any-return]

    vars(jws)[_SEGMENT_DECODER] = spy
    try:
        loaded = jws._load(_SAMPLE_COMPACT)
    except Exception:  # pragma: no cover - a PyJWT whose _load works differently
        return False
    return seen == ["header", "payload", "crypto"] and loaded == jwt.PyJWS()._load(_SAMPLE_COMPACT)


def fast_segment_decoding(jws: jwt.PyJWS) -> bool:
    """Give ``jws`` (a private instance) the faster decoder of token segments (PyJWT 2.14 - 2.15).

    Returns whether it did: not when this PyJWT's ``_load`` no longer decodes
    segments through ``_decode_base64url_segment`` (tests/test_compat.py then
    fails, so it is never silent). Only ``jws`` changes, never PyJWT's class.
    """
    if not _segment_decoding_is_reachable():
        return False
    vars(jws)[_SEGMENT_DECODER] = _segment_decoder(getattr(type(jws), _SEGMENT_DECODER))
    return True


# -- pydantic --------------------------------------------------------------

# What a pydantic 2 model instance holds (pydantic 2.6 - 2.14); model_construct fills the same.
_SLOTS = {"__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"}


def _fill(model: type[M], fields: frozenset[str]) -> Callable[[dict[str, Any]], M]:
    new = object.__new__
    put = object.__setattr__

    def build(values: dict[str, Any]) -> M:
        instance: M = new(model)
        put(instance, "__dict__", values)
        put(instance, "__pydantic_fields_set__", set(fields))
        put(instance, "__pydantic_extra__", None)
        put(instance, "__pydantic_private__", None)
        return instance

    return build


def direct_construction_matches(model: type[M], sample: dict[str, Any]) -> bool:
    """Whether filling ``model`` directly gives what ``model_construct`` gives, for ``sample``."""
    fields = frozenset(model.model_fields)
    try:
        ours, theirs = _fill(model, fields)(dict(sample)), model.model_construct(**sample)
        return (
            set(BaseModel.__slots__) == _SLOTS
            and ours.__dict__ == theirs.__dict__
            and ours.__pydantic_fields_set__ == theirs.__pydantic_fields_set__
            and ours.__pydantic_extra__ == theirs.__pydantic_extra__
            and ours.__pydantic_private__ == theirs.__pydantic_private__
            and ours == theirs
            and set(ours.__dict__) == fields
        )
    except Exception:  # pragma: no cover - a pydantic that stores models differently
        return False


def direct_constructor(model: type[M], sample: dict[str, Any]) -> Callable[[dict[str, Any]], M]:
    """A builder of ``model`` instances from every field's value, without validation.

    It fills the instance the way ``model_construct`` does (pydantic 2.6 -
    2.14), for less: no walk over the fields for defaults and aliases. At
    build time it makes ``sample`` both ways and compares them; should a
    pydantic release store models differently it returns ``model_construct``
    itself (tests/test_compat.py fails in that case, so it is never silent).
    """
    if direct_construction_matches(model, sample):
        return _fill(model, frozenset(model.model_fields))

    def constructed(values: dict[str, Any]) -> M:
        return model.model_construct(**values)

    return constructed
