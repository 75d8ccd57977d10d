"""The API surprises a first user met (issue 14, findings 6 and 9), each fixed and pinned."""

# No ``from __future__ import annotations``: FastAPI reads the routes' signatures,
# which name local dependencies.

import asyncio
import time
import warnings
from typing import Annotated

import jwt
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, SecretStr

from redis_jwt import RedisJWT, Session, Settings, errors
from redis_jwt.fastapi import install_error_handlers, require_session
from redis_jwt.starlette import RedisJWTMiddleware
from redis_jwt.testing import RedisBinary, RedisServer

from .conftest import SECRET
from .web_helpers import client

PASSWORD = "s3cret-repr-pw"


@pytest.fixture
def no_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_JWT_SECRET", "REDIS_JWT_KEYS", "BILLING_AUTH_SECRET"):
        monkeypatch.delenv(name, raising=False)


# -- configuration ------------------------------------------------------------


@pytest.mark.usefixtures("no_key_variables")
def test_from_settings_without_a_key_names_the_variables() -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        RedisJWT.from_settings(Settings())
    assert "REDIS_JWT_SECRET" in str(caught.value)
    assert "REDIS_JWT_KEYS" in str(caught.value)
    with pytest.raises(errors.ConfigurationError, match="BILLING_AUTH_SECRET"):
        RedisJWT.from_settings(env_prefix="BILLING_AUTH_")


@pytest.mark.usefixtures("no_key_variables")
def test_env_prefix_reads_other_variables_and_key_prefix_names_the_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_AUTH_SECRET", SECRET)
    monkeypatch.setenv("BILLING_AUTH_PREFIX", "billing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the clear keywords never warn
        assert RedisJWT.from_settings(env_prefix="BILLING_AUTH_").prefix == "billing"
        auth = RedisJWT.from_settings(env_prefix="BILLING_AUTH_", key_prefix="app2")
        assert auth.prefix == "app2"
    with pytest.raises(errors.ConfigurationError, match="not both"):
        RedisJWT.from_settings(Settings(secret=SecretStr(SECRET)), env_prefix="BILLING_AUTH_")


@pytest.mark.usefixtures("no_key_variables")
def test_the_ambiguous_prefix_keyword_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="key_prefix="):
        auth = RedisJWT.from_settings(Settings(secret=SecretStr(SECRET)), prefix="legacy")
    assert auth.prefix == "legacy"


async def test_a_too_long_ttl_states_the_real_limit_and_the_option(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        with pytest.raises(errors.ConfigurationError) as caught:
            await auth.sign("u1", ttl="2 years")
        assert await auth.count("u1") == 0  # nothing written
    message = str(caught.value)
    assert "31622400 s (366 days)" in message
    assert "max_age (30 days)" in message
    assert "max_age='2 years'" in message
    # The advice works.
    async with RedisJWT(secret=SECRET, redis_url=redis_url, max_age="2 years") as auth:
        token = await auth.sign("u1", ttl="2 years")
        assert (await auth.verify(token)).ttl > 366 * 86400


# -- sign("") in a web app ------------------------------------------------------


class Login(BaseModel):
    name: str


async def test_an_empty_user_id_is_a_typed_error_and_a_400_over_http(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        for bad in ("", "x" * 513):
            with pytest.raises(errors.InvalidUserId):
                await auth.sign(bad)
        assert issubclass(errors.InvalidUserId, errors.ConfigurationError)
        app = FastAPI()
        install_error_handlers(app)

        @app.post("/login")
        async def login(body: Login) -> dict[str, str]:
            return {"token": await auth.sign(body.name)}

        async with client(app) as http:
            refused = await http.post("/login", json={"name": ""})
            accepted = await http.post("/login", json={"name": "alice"})
    assert refused.status_code == 400
    assert refused.json() == {"detail": "invalid user id"}
    assert accepted.status_code == 200


# -- logging out ------------------------------------------------------------------


async def test_logging_out_twice_or_without_a_token_is_false_not_an_error(
    auth: RedisJWT,
) -> None:
    assert await auth.destroy(None) is False
    assert await auth.destroy("") is False
    token = await auth.sign("u1")
    assert await auth.destroy(token) is True
    assert await auth.destroy(token) is False  # a second logout: nothing left to end
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(errors.InvalidToken):
        await auth.destroy(forged)


async def test_logging_out_with_an_expired_token_ends_the_session(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as auth:
        token = await auth.sign("u1", ttl="1 hour")
        session = await auth.verify(token)
        now = int(time.time())
        expired = jwt.encode(
            {"sub": "u1", "sid": session.session_id, "iat": now - 100, "exp": now - 50},
            SECRET,
            algorithm="HS256",
        )
        assert await auth.destroy(expired) is True
        assert await auth.count("u1") == 0


# -- ping and repr -----------------------------------------------------------------


async def test_ping_is_false_while_redis_is_down_and_true_when_back(
    own_server: RedisServer,
) -> None:
    async with RedisJWT(secret=SECRET, redis_url=own_server.url) as auth:
        assert await auth.ping() is True
        own_server.kill()
        assert await auth.ping() is False
        own_server.restart()
        for _ in range(200):  # bounded: the client reconnects by itself
            if await auth.ping():
                break
            await asyncio.sleep(0.05)
        assert await auth.ping() is True
    with pytest.raises(errors.ConfigurationError):
        await auth.ping()  # closed: a misuse, not a health answer


async def test_repr_says_what_it_is_and_never_a_secret(redis_jwt_binary: RedisBinary) -> None:
    with RedisServer(redis_jwt_binary, password=PASSWORD) as server:
        auth = RedisJWT(secret=SECRET, redis_url=server.url, prefix="shop")
        expected = (
            f"<RedisJWT layout='v1' redis='redis://:***@127.0.0.1:{server.port}/0' "
            "prefix='shop' state='{}'>"
        )
        assert repr(auth) == expected.format("new")
        async with auth:
            assert repr(auth) == expected.format("open")
        assert repr(auth) == expected.format("closed")
        assert PASSWORD not in repr(auth)
        assert SECRET not in repr(auth)


# -- the middleware and the dependency together --------------------------------------


async def _pttl_calls(auth: RedisJWT) -> int:
    stats = await auth.info("commandstats")
    entry = stats.get("cmdstat_pttl")
    return int(entry["calls"]) if isinstance(entry, dict) else 0


async def test_the_dependency_reuses_the_middlewares_verify(auth: RedisJWT) -> None:
    app = FastAPI()
    current = require_session(auth)

    @app.get("/me")
    async def me(
        request: Request, session: Annotated[Session, Depends(current)]
    ) -> dict[str, bool]:
        return {"same": session is getattr(request.state, "user", None)}

    protected = RedisJWTMiddleware(app, auth=auth)
    token = await auth.sign("u1")
    headers = {"authorization": f"Bearer {token}"}
    async with client(protected) as http:
        await auth.redis.config_resetstat()
        answer = await http.get("/me", headers=headers)
        assert answer.status_code == 200
        assert answer.json() == {"same": True}
        assert await _pttl_calls(auth) == 1  # one verify per request, not two
        # Alone, the dependency verifies by itself.
        async with client(app) as alone:
            await auth.redis.config_resetstat()
            alone_answer = await alone.get("/me", headers=headers)
            assert alone_answer.status_code == 200
            assert alone_answer.json() == {"same": False}
            assert await _pttl_calls(auth) == 1
            assert (await alone.get("/me")).status_code == 401


async def test_another_instances_middleware_does_not_stand_in_for_the_dependency(
    redis_url: str,
) -> None:
    async with (
        RedisJWT(secret=SECRET, redis_url=redis_url) as front,
        RedisJWT(secret=SECRET, redis_url=redis_url, prefix="other") as back,
    ):
        app = FastAPI()
        current = require_session(back)

        @app.get("/me")
        async def me(session: Annotated[Session, Depends(current)]) -> dict[str, str]:
            return {"user": session.user_id}

        token = await front.sign("u1")  # a session of front's key namespace only
        async with client(RedisJWTMiddleware(app, auth=front)) as http:
            answer = await http.get("/me", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 401


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://bob:pw@127.0.0.1:7000/2", "redis://bob:***@127.0.0.1:7000/2"),
        ("rediss://127.0.0.1:6380", "rediss://127.0.0.1:6380/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        (
            "redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster",
            "redis+sentinel://:***@127.0.0.1:26379,127.0.0.1:26380/mymaster",
        ),
        (
            "redis+cluster://:pw@127.0.0.1:7001,127.0.0.1:7002",
            "redis+cluster://:***@127.0.0.1:7001,127.0.0.1:7002",
        ),
    ],
)
async def test_repr_shows_every_kind_of_address_redacted(url: str, shown: str) -> None:
    auth = RedisJWT(secret=SECRET, redis_url=url)  # no I/O in the constructor
    assert f"redis='{shown}'" in repr(auth)
    assert ":pw@" not in repr(auth)
    await auth.aclose()
