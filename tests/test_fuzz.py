"""Property tests over verify and the middleware with generated tokens, headers and claims.

The only outcomes allowed: a ``Session`` for a genuine live token (of that token's
own user and session), an ``AuthenticationError`` for everything else, or a
``StoreError`` when Redis is down. Any other exception fails the test.

The default run draws ``REDIS_JWT_FUZZ_EXAMPLES`` (2 000) examples per property;
``nox -s fuzz`` draws 50 000.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms

from redis_jwt import Key, RedisJWT, Session, errors
from redis_jwt.testing import RedisServer, free_port

from . import fuzzgen
from .conftest import SECRET
from .keyfactory import fresh_private_key, private_key, private_pem, public_pem

settings.register_profile(
    "redis-jwt-fuzz",
    max_examples=int(os.environ.get("REDIS_JWT_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
FUZZ = settings.get_profile("redis-jwt-fuzz")
b64 = fuzzgen.b64


def unverified(token: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except Exception:
        return None
    return claims


Outcome = Session | errors.AuthenticationError | errors.StoreError


def usable(session: Session) -> None:
    """Touch what an app reads from a session (its datetimes included): nothing may raise.

    JSON output is not checked: a key holder can sign strings that are not valid
    Unicode (lone surrogates); our own sign() refuses them.
    """
    session.model_dump()
    assert session.max_expires_at >= session.issued_at
    assert session.expires_at >= session.issued_at or session.ttl == 0


async def outcome(auth: RedisJWT, token: str, *, with_session: bool = False) -> Outcome:
    """verify(), with the allowed failures returned; anything else propagates (a bug)."""
    try:
        return await auth.verify(token, with_session=with_session)
    except (errors.AuthenticationError, errors.StoreError) as exc:
        return exc


@dataclass
class World:
    """Live sessions made by the fixture, and the configured instances."""

    auth: RedisJWT
    ring_auth: RedisJWT
    node: RedisJWT
    down: RedisJWT
    tokens: list[str] = field(default_factory=list)
    claims: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ring_tokens: list[str] = field(default_factory=list)
    node_keys: list[str] = field(default_factory=list)

    def check(self, result: Outcome, token: str) -> None:
        """A session only for the exact (user, session) the token names, and only a live one."""
        assert not isinstance(result, errors.StoreError), result
        if isinstance(result, Session):
            usable(result)
            claims = unverified(token)
            assert claims is not None
            assert (claims["sub"], claims["sid"]) == (result.user_id, result.session_id)
            assert (result.user_id, result.session_id) in self.claims


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def ring_keys() -> list[Key]:
    return [
        Key.from_pem("es", private_pem(private_key("p256"))),
        Key.from_pem("ed", private_pem(private_key("ed25519"))),
        Key.hmac("hs", SECRET),
        Key.from_pem("rs", private_pem(private_key("rsa")), "PS256"),
    ]


@pytest.fixture
async def world(fuzz_server: RedisServer) -> AsyncIterator[World]:
    fuzz_server.command("FLUSHALL")
    url = fuzz_server.url
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        RedisJWT(secret=SECRET, redis_url=url) as auth,
        RedisJWT(keys=ring_keys(), redis_url=url) as ring_auth,
        RedisJWT(secret=SECRET, redis_url=url, layout="redis-jwt") as node,
        RedisJWT(secret=SECRET, redis_url=dead, timeout_seconds=0.2, retries=0) as down,
    ):
        w = World(auth, ring_auth, node, down)
        for user in ("alice", "bob", "carol:x", "ü {*}"):
            token = await auth.sign(user, data_token={"u": user}, data_session={"p": 1})
            claims = jwt.decode(token, SECRET, algorithms=["HS256"])
            w.tokens.append(token)
            w.claims[(user, claims["sid"])] = claims
        for user in ("alice", "bob"):
            token = await ring_auth.sign(user)
            claims = jwt.decode(token, options={"verify_signature": False})
            w.ring_tokens.append(token)
            w.claims[(user, claims["sid"])] = claims
            node_token = await node.sign(user, data_token={"u": user})
            w.node_keys.append(jwt.decode(node_token, SECRET, algorithms=["HS256"])["rjwt"])
        yield w


# -- strategies ---------------------------------------------------------------

B64URL = fuzzgen.B64URL
junk_tokens = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(st.text(alphabet=B64URL + "=.+/", max_size=60), min_size=1, max_size=5).map(".".join),
    st.text(alphabet=B64URL + ".", max_size=400),
)
seeds = st.integers(min_value=0, max_value=2**64 - 1)


# -- properties ---------------------------------------------------------------


@FUZZ
@given(token=junk_tokens)
async def test_junk_is_an_authentication_error_without_redis(world: World, token: str) -> None:
    for auth in (world.auth, world.down, world.node):
        result = await outcome(auth, token)
        assert isinstance(result, errors.AuthenticationError), result


def mutate(r: random.Random, token: str, donors: list[str]) -> str:
    """Apply one to three random edits: characters, truncation, case, segments of other tokens."""
    for _ in range(r.randint(1, 3)):
        op = r.choice(["replace", "insert", "delete", "truncate", "swap", "segment", "case", "pad"])
        # Edits near the ends and the dots matter most (padding, stray separators).
        at = r.choice(
            [len(token), len(token) - 1, token.rfind(".") + 1, r.randrange(len(token) + 1)]
        )
        char = r.choice(B64URL + ".=+/ \x00é\n")
        if op == "replace":
            token = token[:at] + char + token[at + 1 :]
        elif op == "insert":
            token = token[:at] + char + token[at:]
        elif op == "delete":
            token = token[:at] + token[at + 1 :]
        elif op == "truncate":
            token = token[:at]
        elif op == "pad":
            token += "=" * r.randint(1, 3)
        elif op == "case":
            token = token[:at] + token[at:].swapcase()
        else:
            other = r.choice(donors).split(".")
            parts = token.split(".")
            i = r.randrange(3)
            if op == "swap" and len(parts) == 3:
                parts[i] = other[i]
            else:
                parts.insert(i, other[i])
            token = ".".join(parts)
    return token


@FUZZ
@given(seed=seeds)
async def test_mutated_tokens_never_open_another_session(world: World, seed: int) -> None:
    r = random.Random(seed)
    genuine = world.tokens + world.ring_tokens
    token = mutate(r, r.choice(genuine), genuine)
    for auth in (world.auth, world.ring_auth):
        result = await outcome(auth, token)
        world.check(result, token)
        if isinstance(result, Session):
            # No second spelling of a token is accepted: only the genuine string opens it.
            assert token in genuine


@FUZZ
@given(seed=seeds, with_session=st.booleans())
async def test_resigned_random_claims(world: World, seed: int, with_session: bool) -> None:
    r = random.Random(seed)
    head = fuzzgen.header(r, ["hs", "es"])
    token = fuzzgen.sign(r, head, fuzzgen.v1_payload(r, sorted(world.claims)), SECRET)
    result = await outcome(world.auth, token, with_session=with_session)
    world.check(result, token)
    down = await outcome(world.down, token)
    assert not isinstance(down, Session)
    if isinstance(down, errors.StoreError):  # only a token that passed every local check
        assert isinstance(result, Session | errors.SessionNotFound), result


ALGORITHMS = get_default_algorithms()


def _signing_materials() -> list[tuple[str, str, Any]]:
    """(name, algorithm, key) pairs an attacker could sign with."""
    foreign_ec = fresh_private_key("p256")
    foreign_ed = fresh_private_key("ed25519")
    return [
        ("es", "ES256", private_key("p256")),
        ("ed", "EdDSA", private_key("ed25519")),
        ("hs", "HS256", SECRET.encode()),
        ("rs", "PS256", private_key("rsa")),
        ("rs-as-RS256", "RS256", private_key("rsa")),
        ("secret-as-HS384", "HS384", SECRET.encode()),
        ("foreign-ec", "ES256", foreign_ec),
        ("foreign-ed", "EdDSA", foreign_ed),
        ("es-public-pem-as-hmac", "HS256", public_pem(private_key("p256"))),
        ("rs-public-pem-as-hmac", "HS256", public_pem(private_key("rsa"))),
    ]


MATERIALS = _signing_materials()


@FUZZ
@given(
    data=st.data(),
    material=st.sampled_from(MATERIALS),
    header_alg=st.none() | st.sampled_from(fuzzgen.ALGS) | st.sampled_from(fuzzgen.ODD_VALUES),
    kid=st.sampled_from(["es", "ed", "hs", "rs", "nope", "", None, 1, ["es"], {"kid": "es"}]),
)
async def test_random_algorithms_and_kids(
    world: World,
    data: st.DataObject,
    material: tuple[str, str, Any],
    header_alg: object,
    kid: object,
) -> None:
    name, sign_alg, key = material
    token = data.draw(st.sampled_from(world.ring_tokens))
    claims = unverified(token)
    assert claims is not None
    alg = sign_alg if header_alg is None else header_alg
    header: dict[str, object] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    message = f"{head}.{body}".encode()
    if sign_alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[sign_alg]
        signature = hmac.new(key, message, digest).digest()
    else:
        signature = ALGORITHMS[sign_alg].sign(message, key)
    forged = f"{head}.{body}.{b64(signature)}"
    result = await outcome(world.ring_auth, forged)
    world.check(result, forged)
    expected = (
        isinstance(kid, str)
        and kid == name
        and alg == sign_alg
        and name in {"es", "ed", "hs", "rs"}
    )
    assert isinstance(result, Session) == expected, (name, alg, kid, result)


@FUZZ
@given(seed=seeds, with_session=st.booleans())
async def test_node_layout_claims(world: World, seed: int, with_session: bool) -> None:
    r = random.Random(seed)
    head = fuzzgen.header(r, ["hs"])
    token = fuzzgen.sign(r, head, fuzzgen.node_payload(r, world.node_keys), SECRET)
    result = await outcome(world.node, token, with_session=with_session)
    assert not isinstance(result, errors.StoreError), result
    if isinstance(result, Session):
        usable(result)
        claims = unverified(token)
        assert claims is not None
        assert f"{result.user_id}:{result.session_id}" == claims["rjwt"]
        assert claims["rjwt"] in world.node_keys


# -- the middleware ---------------------------------------------------------------


async def call_middleware(middleware: Any, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/private",
        "raw_path": b"/private",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await middleware(scope, receive, send)
    status: int = sent[0]["status"]
    return status


def protected_app(seen_users: list[Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen_users.append(scope["state"]["user"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@FUZZ
@given(seed=seeds)
async def test_middleware_with_generated_headers(world: World, seed: int) -> None:
    from redis_jwt.starlette import RedisJWTMiddleware, SessionCookie

    r = random.Random(seed)
    seen: list[Any] = []
    middleware = RedisJWTMiddleware(
        protected_app(seen), auth=world.auth, cookie=SessionCookie(name="sid")
    )
    headers = fuzzgen.request_headers(r, r.choice(world.tokens), b"sid")
    status = await call_middleware(middleware, headers)
    assert status in (200, 401), status
    if status == 200:
        session = seen[-1]
        assert isinstance(session, Session)
        assert (session.user_id, session.session_id) in world.claims
        own = next(t for t in world.tokens if session.session_id in str(unverified(t)))
        assert any(own.encode() in v for _, v in headers)
