"""Every reach-in of redis_jwt._compat, checked against the installed release.

Each test names the range of releases it was written for and first checks
that the installed release is inside it: a release outside the range fails
here (re-check the reach-in, then widen the range), and a release that
changes what is reached into fails the checks after it. Nothing may become
silently slower or wrong.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from datetime import UTC, datetime
from typing import Any

import hiredis
import jwt
import pydantic
import pytest
import redis
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis._parsers import hiredis as redis_hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.sentinel import Sentinel

from redis_jwt import Session, TokenPair, _compat
from redis_jwt._redis.pipeline import _send_and_read
from redis_jwt._token_cache import _PreparedHMAC, prepared_jwt
from redis_jwt.keys import KeyRing

SECRET = "a-compat-test-secret-of-at-least-32-bytes!"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def written_for(package: str, installed: str, lowest: str, below: str) -> None:
    """Fail loudly when ``installed`` is outside [lowest, below)."""
    if not _version(lowest) <= _version(installed) < _version(below):
        pytest.fail(
            f"redis_jwt._compat was written for {package} >={lowest},<{below}; "
            f"{installed} is installed: re-check this reach-in, then widen the range"
        )


def redis_py() -> None:
    written_for("redis-py", redis.__version__, "5.2.1", "9")


def pyjwt() -> None:
    written_for("PyJWT", jwt.__version__, "2.13.0", "2.16")


def pydantic_v() -> None:
    written_for("pydantic", pydantic.VERSION, "2.6.0", "2.15")


# -- redis-py --------------------------------------------------------------


async def test_pool_checkout_matches_get_connection(redis_url: str) -> None:
    """redis-py 5.2.1 - 8.x: ``get_connection`` takes a command name up to 5.2 only."""
    redis_py()
    parameter = inspect.signature(ConnectionPool.get_connection).parameters.get("command_name")
    assert parameter is not None, "ConnectionPool.get_connection lost its command_name parameter"
    assert (_version(redis.__version__) < (5, 3)) == _compat.NAMED_CHECKOUT
    client = Redis.from_url(redis_url)
    try:
        pool = client.connection_pool
        conn = await _compat.checkout(pool)
        try:
            await conn.send_command("PING")
            assert await conn.read_response() in (b"PONG", "PONG")
        finally:
            await pool.release(conn)
    finally:
        await client.aclose()


async def test_untimed_reads_lifts_and_restores_the_socket_timeout(redis_url: str) -> None:
    """redis-py 5.2.1 - 8.x: a connection's per-read timeout, and the timeout of a send
    (run in a task of its own by ``asyncio.wait_for``), is its ``socket_timeout``."""
    redis_py()
    client = Redis.from_url(redis_url, socket_timeout=0.5)
    try:
        pool = client.connection_pool
        conn = await _compat.checkout(pool)
        try:
            assert conn.socket_timeout == 0.5
            with _compat.untimed_reads(conn):
                assert conn.socket_timeout is None
                await conn.send_command("PING")
                assert await conn.read_response() in (b"PONG", "PONG")
            assert conn.socket_timeout == 0.5
        finally:
            await pool.release(conn)
    finally:
        await client.aclose()


def test_a_timed_send_runs_in_a_task_of_its_own() -> None:
    """redis-py 5.2.1 - 8.x: with a ``socket_timeout``, ``send_packed_command`` runs the
    write under ``asyncio.wait_for`` (a task): what lifting the timeout saves on a write."""
    redis_py()
    send = inspect.getsource(AbstractConnection.send_packed_command)
    assert "wait_for" in send
    assert "if self.socket_timeout" in send


def test_hiredis_parser_reads_as_the_batch_reader_assumes() -> None:
    """redis-py 6.2 - 8.x: ``_AsyncHiredisParser.read_response`` takes each reply from its
    ``hiredis.Reader`` (``_reader.gets()``, ``NOT_ENOUGH_DATA`` when none is whole), hands
    push messages to ``handle_push_response``, raises a ``ConnectionError`` reply; and
    ``read_response`` of a connection adds a timeout, the address for its errors and the
    health-check clock: what ``buffered_replies`` reproduces without the per-reply work."""
    written_for("redis-py", redis.__version__, "6.2.0", "9")
    parser_read = inspect.getsource(redis_hiredis._AsyncHiredisParser.read_response)
    for marker in (
        "if not self._connected",
        "self._reader.gets()",
        "while response is NOT_ENOUGH_DATA",
        "isinstance(response, ConnectionError)",
        "_hiredis_PushNotificationType",
        "await self.handle_push_response(response)",
        "isinstance(response[0], ConnectionError)",
    ):
        assert marker in parser_read, f"_AsyncHiredisParser.read_response lost {marker!r}"
    conn_read = inspect.getsource(Connection.read_response)
    for marker in (
        "self._host_error()",
        "await self.disconnect(nowait=True)",
        "next_health_check",
        "raise response from None",
        "Error while reading from",
    ):
        assert marker in conn_read, f"Connection.read_response lost {marker!r}"


async def test_buffered_replies_are_the_parser_s_replies(redis_url: str) -> None:
    """redis-py 6.2 - 8.x: ``buffered_replies`` returns the replies a connection's hiredis
    reader holds as ``read_response`` returns them (an error reply in its place, of
    redis-py's own exception class), stops at the first reply not yet received, and
    raises a reply that breaks the connection after disconnecting it."""
    written_for("redis-py", redis.__version__, "6.2.0", "9")
    client = Redis.from_url(redis_url)
    try:
        pool = client.connection_pool
        conn = await _compat.checkout(pool)
        try:
            parser = _compat.hiredis_parser(conn)
            assert parser is not None, "a connection of redis-py with hiredis has no hiredis parser"
            # Replies as Redis would send them, given to the reader (the connection
            # is dropped below: it is no longer in step with the server).
            parser._reader.feed(b"+OK\r\n-NOSCRIPT No matching script.\r\n:5\r\n$2\r\nab")
            replies: list[Any] = ["first"]
            await _compat.buffered_replies(conn, parser, replies, 10)
            assert replies[:2] == ["first", b"OK"]
            assert type(replies[2]) is redis.exceptions.NoScriptError
            assert replies[3:] == [5]  # "$2 ab" is not whole yet
            parser._reader.feed(b"\r\n:6\r\n:7\r\n")
            await _compat.buffered_replies(conn, parser, replies, 6)
            assert replies[4:] == [b"ab", 6]  # no more than asked for
            parser._reader.feed(b"-LOADING Redis is loading the dataset in memory\r\n")
            with pytest.raises(redis.exceptions.BusyLoadingError):
                await _compat.buffered_replies(conn, parser, [], 10)  # 7, then LOADING
            assert not parser._connected, "a reply that breaks the connection left it open"
        finally:
            await conn.disconnect()
            await pool.release(conn)
    finally:
        await client.aclose()


def test_the_pure_python_parser_is_not_read_directly() -> None:
    """redis-py 6.2 - 8.x: without hiredis the batch reader keeps ``read_response``."""
    written_for("redis-py", redis.__version__, "6.2.0", "9")
    for parser_class in (_AsyncRESP2Parser, _AsyncRESP3Parser):
        conn = Connection(parser_class=parser_class)
        assert _compat.hiredis_parser(conn) is None


async def test_a_batch_reads_the_same_replies_with_either_parser(redis_url: str) -> None:
    """redis-py 6.2 - 8.x: a pipelined batch (replies taken from the hiredis reader, or
    one ``read_response`` each with the pure-Python parser) gives the same replies, error
    replies in their place, and leaves the connection in step."""
    written_for("redis-py", redis.__version__, "6.2.0", "9")
    commands: list[tuple[str | int, ...]] = [
        ("SET", "compat:batch", "x"),
        ("GET", "compat:batch"),
        ("INCR", "compat:batch"),  # WRONGTYPE-like error reply: not an integer
        ("EVALSHA", "0" * 40, 0),  # NOSCRIPT
        *[("PTTL", f"compat:missing:{i}") for i in range(200)],
        ("DEL", "compat:batch"),
    ]
    packed = b"".join(hiredis.pack_command(c) for c in commands)  # type: ignore[arg-type]
    outcomes = []
    for parser_class in (None, _AsyncRESP2Parser):
        extra: dict[str, Any] = {} if parser_class is None else {"parser_class": parser_class}
        client = Redis.from_url(redis_url, protocol=2, **extra)
        try:
            pool = client.connection_pool
            conn = await _compat.checkout(pool)
            try:
                assert (_compat.hiredis_parser(conn) is None) is (parser_class is not None)
                replies = await _send_and_read(conn, packed, len(commands))
                await conn.send_command("PING")
                assert await conn.read_response() in (b"PONG", "PONG")  # still in step
            finally:
                await pool.release(conn)
        finally:
            await client.aclose()
        outcomes.append([(type(r), str(r)) if isinstance(r, Exception) else r for r in replies])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][3][0] is redis.exceptions.NoScriptError
    assert outcomes[0][2][0] is redis.exceptions.ResponseError


def test_side_connections_accept_every_other_pool_kwarg(redis_url: str) -> None:
    """redis-py 5.2.1 - 8.x: a pool's connection kwargs, minus the internal ones, build a
    connection by themselves; a new internal kwarg fails this test, not the listener."""
    redis_py()
    pool = ConnectionPool.from_url(redis_url)
    accepted = set(inspect.signature(pool.connection_class.__init__).parameters)
    takes_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(pool.connection_class.__init__).parameters.values()
    )
    kwargs = _compat.side_connection_kwargs(dict(pool.connection_kwargs))
    assert not set(_compat.INTERNAL_CONNECTION_KWARGS) & set(kwargs)
    if not takes_any:
        assert set(kwargs) <= accepted, f"unknown connection kwargs: {set(kwargs) - accepted}"
    conn = pool.connection_class(**kwargs)
    assert conn.host == pool.connection_kwargs["host"]


async def test_an_open_connection_exposes_its_asyncio_transport(redis_url: str) -> None:
    """redis-py 5.2.1 - 8.x: an open connection keeps its ``StreamWriter`` in ``_writer``."""
    redis_py()
    pool = ConnectionPool.from_url(redis_url)
    kwargs = _compat.side_connection_kwargs(dict(pool.connection_kwargs))
    conn: Any = pool.connection_class(**kwargs)
    await conn.connect()
    try:
        transport = _compat.asyncio_transport(conn)
        assert isinstance(transport, asyncio.Transport)
        assert not transport.is_closing()
    finally:
        await conn.disconnect()
    with pytest.raises(RuntimeError, match="asyncio transport"):
        _compat.asyncio_transport(conn)


def test_a_cluster_client_has_a_nodes_manager_that_reinitialises() -> None:
    """redis-py 5.2.1 - 8.x: ``RedisCluster.nodes_manager.initialize`` re-reads the slot map."""
    redis_py()
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", 1)])
    manager = getattr(client, "nodes_manager", None)
    assert manager is not None, "RedisCluster has no nodes_manager"
    assert inspect.iscoroutinefunction(manager.initialize)


async def test_a_sentinel_client_pool_holds_its_sentinels() -> None:
    """redis-py 5.2.1 - 8.x: ``Sentinel.master_for`` pools keep the ``Sentinel`` as
    ``sentinel_manager``, which closing the client leaves open (``Sentinel.aclose``
    from redis-py 8.1; its ``sentinels`` clients before)."""
    redis_py()
    sentinel = Sentinel([("127.0.0.1", 1)])  # type: ignore[no-untyped-call]
    client = sentinel.master_for("service")
    assert getattr(client.connection_pool, "sentinel_manager", None) is sentinel
    if _version(redis.__version__) >= (8, 1):
        assert inspect.iscoroutinefunction(sentinel.aclose)
    else:  # before 8.1 there is no Sentinel.aclose: its clients are closed one by one
        assert not hasattr(sentinel, "aclose")
        assert all(isinstance(s, Redis) for s in sentinel.sentinels)
        assert len(sentinel.sentinels) == 1
    await _compat.close_sentinels(client)  # nothing was opened: a no-op that must not fail
    await _compat.close_sentinels(object())


# -- PyJWT -----------------------------------------------------------------


def test_each_pyjwt_instance_has_its_own_jws() -> None:
    """PyJWT 2.13 - 2.15: ``PyJWT()`` holds a ``PyJWS`` of its own in ``_jws``, so the
    prepared HMAC algorithms never leak into other users of PyJWT."""
    pyjwt()
    first, second = jwt.PyJWT(), jwt.PyJWT()
    jws = _compat.instance_jws(first)
    assert jws is not None, "PyJWT instances share one PyJWS: prepared_jwt would fall back"
    assert jws is not _compat.instance_jws(second)
    ring = KeyRing.from_secret(SECRET, "HS256")
    prepared = prepared_jwt(ring)
    own = _compat.instance_jws(prepared)
    assert own is not None
    assert isinstance(own.get_algorithm_by_name("HS256"), _PreparedHMAC)
    assert not isinstance(jwt.api_jws.get_algorithm_by_name("HS256"), _PreparedHMAC)


def test_prepared_hmac_answers_pyjwts_key_length_check_as_pyjwt_does() -> None:
    """PyJWT 2.10+: ``_verify_signature`` calls ``check_key_length`` on every decode;
    the prepared algorithm gives PyJWT's own answer, computed once per ready secret."""
    plain = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    short, long = b"s" * 8, b"l" * 40
    prepared = _PreparedHMAC(jwt.algorithms.HMACAlgorithm.SHA256, frozenset({short, long}))
    for key in (short, long, b"x" * 5, b"y" * 64):  # ready, and not
        assert prepared.check_key_length(key) == plain.check_key_length(key)
    assert prepared.check_key_length(short)  # a short secret still gets PyJWT's warning text


def _segment_corpus() -> list[bytes]:
    """Token segments of every shape: valid, padded, junk, impossible lengths, non-canonical."""
    corpus: list[bytes] = [b"", b"=", b"==", b"===", b"A", b"AA", b"AAA", b"AAAA", b"A===", b"Zg"]
    for size in range(0, 40):
        data = bytes(range(size))
        encoded = base64.urlsafe_b64encode(data)
        stripped = encoded.rstrip(b"=")
        corpus += [encoded, stripped, stripped + b"=", stripped + b"==", stripped + b"==="]
        if stripped:
            last = stripped[-1:]
            # Another last character: non-canonical when its low bits were unused.
            for other in (b"B", b"h", b"-", b"_", b"0"):
                if other != last:
                    corpus.append(stripped[:-1] + other)
            corpus += [b"+" + stripped, b"/" + stripped, stripped + b".", stripped + b"\n"]
            corpus += [stripped + b"\xff", b" " + stripped, stripped[:1] + b"!" + stripped[1:]]
            corpus.append(base64.b64encode(data).rstrip(b"="))  # the standard alphabet
    # Every last character after 0-3 full groups and 1-3 more characters: the
    # canonical ones (unused bits zero) and every other.
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=."
    for prefix in (b"", b"eyJh", b"eyJhbGci"):
        for middle in (b"", b"Z", b"Zg"):
            corpus += [prefix + middle + bytes([last]) for last in alphabet]
    return corpus


def test_segments_decode_as_pyjwt_decodes_them() -> None:
    """PyJWT 2.14 - 2.15: ``PyJWS._load`` decodes its segments through the private static
    ``_decode_base64url_segment``; the faster decoder gives the same bytes or PyJWT's own error."""
    pyjwt()
    original = jwt.PyJWS._decode_base64url_segment
    jws = jwt.PyJWS()
    assert _compat.fast_segment_decoding(jws), "PyJWS._load no longer uses the segment decoder"
    assert "_decode_base64url_segment" not in vars(jwt.PyJWS())  # only that instance changed
    fast = vars(jws)["_decode_base64url_segment"]
    for segment in _segment_corpus():
        for name in ("header", "payload", "crypto"):
            try:
                expected: bytes | str = original(segment, name)
            except jwt.DecodeError as exc:
                expected = f"DecodeError: {exc}"
            try:
                got: bytes | str = fast(segment, name)
            except jwt.DecodeError as exc:
                got = f"DecodeError: {exc}"
            assert got == expected, (segment, name)
    # The prepared instance of the codec has it.
    own = _compat.instance_jws(prepared_jwt(KeyRing.from_secret(SECRET, "HS256")))
    assert own is not None
    assert "_decode_base64url_segment" in vars(own)


# -- pydantic --------------------------------------------------------------


def test_sessions_are_filled_like_model_construct() -> None:
    """pydantic 2.6 - 2.14: a model instance is its ``__dict__`` plus three
    ``__pydantic_*__`` slots; the direct fill must equal ``model_construct``."""
    pydantic_v()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    sample: dict[str, Any] = {
        "user_id": "u",
        "session_id": "s",
        "data_token": {"a": 1},
        "data_session": None,
        "issued_at": at,
        "expires_at": at,
        "ttl": 1,
        "claims": {"sub": "u"},
    }
    assert _compat.direct_construction_matches(Session, sample), (
        "pydantic stores models differently: Session would be built by model_construct"
    )
    built = _compat.direct_constructor(Session, sample)(dict(sample))
    assert built == Session.model_construct(**sample)
    assert built.model_dump() == Session.model_construct(**sample).model_dump()


def test_token_pairs_are_filled_like_model_construct() -> None:
    """pydantic 2.6.4 - 2.14: the direct fill of TokenPair (refresh, sign_pair) equals
    ``model_construct``."""
    pydantic_v()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    sample: dict[str, Any] = {
        "access_token": "a",
        "refresh_token": "r",
        "access_expires_at": at,
        "refresh_expires_at": at,
    }
    assert _compat.direct_construction_matches(TokenPair, sample), (
        "pydantic stores models differently: TokenPair would be built by model_construct"
    )
    built = _compat.direct_constructor(TokenPair, sample)(dict(sample))
    assert built == TokenPair.model_construct(**sample)
    assert built.model_dump_json() == TokenPair.model_construct(**sample).model_dump_json()
