"""Asymmetric keys, rotation without logging anyone out, and the JWKS, on a real Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest

from redis_jwt import Key, KeyRing, RedisJWT, errors

from .conftest import SECRET
from .hostile import b64, hostile_tokens
from .keyfactory import fresh_private_key, private_key, private_pem, public_pem


def pem_key(kid: str, kind: str, algorithm: str | None = None) -> Key:
    return Key.from_pem(kid, private_pem(private_key(kind)), algorithm)


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("rsa", "RS256"),
        ("rsa", "PS256"),
        ("p256", "ES256"),
        ("p521", "ES512"),
        ("ed25519", "EdDSA"),
        ("ed448", "EdDSA"),
    ],
)
async def test_asymmetric_keys_sign_and_verify(redis_url: str, kind: str, algorithm: str) -> None:
    key = pem_key(f"{algorithm}-1", kind, algorithm)
    async with RedisJWT(keys=[key], redis_url=redis_url) as auth:
        token = await auth.sign("alice", data_token={"role": "admin"})
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == (algorithm, f"{algorithm}-1")
        session = await auth.verify(token, with_session=True)
        assert (session.user_id, session.data_token) == ("alice", {"role": "admin"})
        # The same session, checked with the public key alone (another service).
        public = Key.from_pem(key.kid or "", public_pem(private_key(kind)), algorithm)
        async with RedisJWT(
            keys=KeyRing([public], verify_only=True), redis_url=redis_url
        ) as verifier:
            assert (await verifier.verify(token)).session_id == session.session_id
            with pytest.raises(errors.ConfigurationError, match="only verifies"):
                await verifier.sign("alice")
        assert await auth.destroy(token)
        with pytest.raises(errors.SessionNotFound):
            await auth.verify(token)


async def test_rotation_keeps_old_tokens_until_the_old_key_is_removed(redis_url: str) -> None:
    old = Key.from_pem("2024-old", private_pem(fresh_private_key("p256")))
    new = Key.from_pem("2025-new", private_pem(fresh_private_key("ed25519")))
    async with RedisJWT(keys=[old], redis_url=redis_url) as before:
        old_token = await before.sign("alice")
    # Step 1: the new key is added and signs; the old one still verifies.
    async with RedisJWT(keys=[new, old], redis_url=redis_url) as during:
        assert (await during.verify(old_token)).user_id == "alice"
        new_token = await during.sign("bob")
        assert jwt.get_unverified_header(new_token)["kid"] == "2025-new"
        assert (await during.verify(new_token)).user_id == "bob"
        assert [k["kid"] for k in during.jwks()["keys"]] == ["2025-new", "2024-old"]
    # Step 2: the old key is removed: its tokens stop, even with a live session.
    async with RedisJWT(keys=[new], redis_url=redis_url) as after:
        with pytest.raises(errors.InvalidToken):
            await after.verify(old_token)
        with pytest.raises(errors.InvalidToken):
            await after.destroy(old_token)
        assert (await after.verify(new_token)).user_id == "bob"
        assert await after.count("alice") == 1  # the session itself was not touched


async def test_moving_from_secret_to_keys_keeps_existing_sessions(redis_url: str) -> None:
    async with RedisJWT(secret=SECRET, redis_url=redis_url) as legacy:
        legacy_token = await legacy.sign("alice")
    ring = KeyRing([pem_key("es-1", "p256"), Key.hmac(None, SECRET)])
    async with RedisJWT(keys=ring, redis_url=redis_url) as auth:
        assert (await auth.verify(legacy_token)).user_id == "alice"
        token = await auth.sign("alice")
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        # A kid-less token must still be the HMAC key's: an ES256 one without kid is not.
        claims = jwt.decode(token, options={"verify_signature": False})
        stripped = jwt.encode(claims, private_key("p256"), algorithm="ES256")  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidToken):
            await auth.verify(stripped)


async def test_kid_and_alg_must_both_match_a_configured_key(redis_url: str) -> None:
    es = pem_key("es", "p256")
    rs = pem_key("rs", "rsa")
    hs = Key.hmac("hs", SECRET)
    async with RedisJWT(keys=[es, rs, hs], redis_url=redis_url) as auth:
        genuine = await auth.sign("alice")
        claims = jwt.decode(genuine, options={"verify_signature": False})
        rsa_key = private_key("rsa")
        forged = {
            "unknown kid": jwt.encode(claims, SECRET, "HS256", headers={"kid": "nope"}),
            "no kid": jwt.encode(claims, private_key("p256"), "ES256"),  # type: ignore[arg-type]
            "kid of another key": jwt.encode(claims, rsa_key, "RS256", headers={"kid": "es"}),  # type: ignore[arg-type]
            "right key, other alg": jwt.encode(claims, rsa_key, "PS256", headers={"kid": "rs"}),  # type: ignore[arg-type]
            "HS384 with the HS key": jwt.encode(claims, SECRET, "HS384", headers={"kid": "hs"}),
            "list kid": jwt.encode(claims, SECRET, "HS256", headers={"kid": "hs"}).replace(
                b64(b'{"alg":"HS256","kid":"hs","typ":"JWT"}'), b64(b'{"alg":"HS256","kid":["hs"]}')
            ),
        }
        for name, token in forged.items():
            with pytest.raises(errors.InvalidToken):
                await auth.verify(token)
            assert name
        assert await auth.verify(jwt.encode(claims, SECRET, "HS256", headers={"kid": "hs"}))


async def test_public_key_as_hmac_secret_is_refused(redis_url: str) -> None:
    # RFC 8725 2.1: an attacker signs HS256 with the *public* key as the secret.
    async with RedisJWT(keys=[pem_key("rs", "rsa")], redis_url=redis_url) as auth:
        token = await auth.sign("alice")
        head, body, _ = token.split(".")
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rs"}).encode())
        signature = hmac.new(
            public_pem(private_key("rsa")), f"{header}.{body}".encode(), hashlib.sha256
        )
        forged = (
            f"{header}.{body}.{base64.urlsafe_b64encode(signature.digest()).rstrip(b'=').decode()}"
        )
        with pytest.raises(errors.InvalidToken):
            await auth.verify(forged)
        assert head


async def test_hostile_corpus_is_refused_with_asymmetric_keys(redis_url: str) -> None:
    async with RedisJWT(
        keys=[pem_key("ed", "ed25519"), pem_key("es", "p256")], redis_url=redis_url
    ) as auth:
        genuine = await auth.sign("victim")
        for token in hostile_tokens(genuine).values():
            with pytest.raises(errors.AuthenticationError):
                await auth.verify(token)
        assert (await auth.verify(genuine)).user_id == "victim"


async def test_the_jwks_verifies_tokens_with_plain_pyjwt(redis_url: str) -> None:
    ring = KeyRing(
        [
            pem_key("ed", "ed25519"),
            pem_key("rs", "rsa", "RS256"),
            pem_key("es", "p256"),
            Key.hmac("hs", SECRET),
        ]
    )
    document = json.loads(json.dumps(RedisJWT(keys=ring).jwks()))  # as served over HTTP
    jwk_set = jwt.PyJWKSet.from_dict(document)
    assert {k.key_id for k in jwk_set.keys} == {"ed", "rs", "es"}
    for signing in ("ed", "rs", "es"):
        async with RedisJWT(keys=KeyRing(ring.keys, signing=signing), redis_url=redis_url) as auth:
            token = await auth.sign("alice", data_token={"n": 1})
            kid = jwt.get_unverified_header(token)["kid"]
            key = jwk_set[kid]
            claims = jwt.decode(token, key, algorithms=[key.algorithm_name])
            assert (claims["sub"], claims["dat"], kid) == ("alice", {"n": 1}, signing)
