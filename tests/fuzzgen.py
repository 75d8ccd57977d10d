"""Generators of hostile JWT parts for tests/test_fuzz.py, driven by a seeded ``Random``.

Hypothesis draws the seed (so a failure is replayed from it); the structure is
built here in plain Python because drawing deep JSON through Hypothesis
strategies costs milliseconds per example, and the properties need thousands.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from typing import Any

OTHER_SECRET = "another-secret-of-at-least-32-bytes-long!!"
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**53 + 1,
    2**63,
    10**30,
    -(10**30),
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "x",
    "123",
    "é",
    "\x00",
    "\ud800",
    "A" * 22,
    "alice",
    [],
    [1],
    [[[]]],
    {},
    {"a": 1},
    {"sub": "alice", "sid": "A" * 22},
    ["alice"],
]
CLAIM_NAMES = ["sub", "sid", "iat", "exp", "nbf", "dat", "aud", "iss", "jti", "rjwt", "dataToken"]
ALGS = ["HS256", "HS384", "HS512", "none", "None", "RS256", "PS256", "ES256", "EdDSA", "hs256", ""]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def text(r: random.Random, size: int = 8) -> str:
    """A short string of mixed ASCII, punctuation and a few non-ASCII characters."""
    alphabet = "abcxyz:*?[]{}\\ .-_0123é\x00"
    return "".join(r.choice(alphabet) for _ in range(r.randrange(size + 1)))


def value(r: random.Random, depth: int = 0) -> Any:
    """Any JSON value (and NaN/Infinity), at most three levels deep."""
    roll = r.random()
    if depth >= 2 or roll < 0.55:
        return r.choice(ODD_VALUES)
    if roll < 0.7:
        return r.randint(-(2**70), 2**70)
    if roll < 0.8:
        return text(r)
    if roll < 0.9:
        return [value(r, depth + 1) for _ in range(r.randrange(4))]
    return {
        r.choice([*CLAIM_NAMES, text(r, 3)]): value(r, depth + 1) for _ in range(r.randrange(4))
    }


def when(r: random.Random) -> Any:
    """A time claim: mostly plausible, sometimes absurd or of the wrong type."""
    now = int(time.time())
    roll = r.random()
    if roll < 0.4:
        return now - r.randrange(100)
    if roll < 0.7:
        return now + r.randrange(60, 40 * 86400)
    return value(r)


def header(r: random.Random, kids: list[str]) -> Any:
    """A JOSE header: mostly an object with an alg, plus key-pointing and odd members."""
    if r.random() < 0.1:
        return value(r)
    head: dict[str, Any] = {"alg": r.choice(ALGS) if r.random() < 0.9 else value(r)}
    for name, make in (
        ("typ", lambda: r.choice(["JWT", "jwt", "at+jwt", 1])),
        ("kid", lambda: r.choice([*kids, "../x", ""]) if r.random() < 0.8 else value(r)),
        ("jku", lambda: "https://evil.example/jwks"),
        ("x5u", lambda: "https://evil.example/c.pem"),
        ("jwk", lambda: {"kty": "oct", "k": b64(b"k" * 32)}),
        ("crit", lambda: [r.choice(["b64", "exp", "x", 1])] if r.random() < 0.8 else value(r)),
        ("b64", lambda: r.choice([True, False])),
    ):
        if r.random() < (0.5 if name in ("typ", "kid") else 0.05):
            head[name] = make()
    return head


def v1_payload(r: random.Random, live: list[tuple[str, str]]) -> Any:
    """Claims near those of live layout v1 sessions, with odd types and missing members."""
    if r.random() < 0.05:
        return value(r)
    user, sid = r.choice(live)
    claims: dict[str, Any] = {
        "sub": user if r.random() < 0.8 else r.choice(["mallory", "", "*", "alice", value(r)]),
        "sid": sid if r.random() < 0.8 else r.choice(["A" * 22, "x", value(r)]),
        "iat": when(r),
        "exp": when(r),
    }
    for _ in range(r.randrange(3)):
        claims[r.choice(CLAIM_NAMES)] = value(r)
    if r.random() < 0.2:
        del claims[r.choice(list(claims))]
    return claims


def node_payload(r: random.Random, keys: list[str]) -> Any:
    """Claims near those of live Node-layout sessions."""
    if r.random() < 0.05:
        return value(r)
    rjwt = (
        r.choice(keys)
        if r.random() < 0.7
        else r.choice(["alice:abcdefghijk", "config", "a:b:cdefghijklm", "*:abcdefghijk", value(r)])
    )
    claims: dict[str, Any] = {"rjwt": rjwt, "iat": when(r)}
    for _ in range(r.randrange(3)):
        claims[r.choice(["dataToken", "exp", "nbf", "iat", "sub"])] = value(r)
    if r.random() < 0.1:
        del claims[r.choice(list(claims))]
    return claims


def sign(r: random.Random, head: Any, payload: Any, secret: str) -> str:
    """Assemble a token; mostly signed HS256 with the real secret, as a key holder would."""
    parts = [b64(json.dumps(head).encode()), b64(json.dumps(payload).encode())]
    message = ".".join(parts).encode()
    roll = r.random()
    if roll < 0.6:
        sig = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    elif roll < 0.75:
        sig = hmac.new(
            secret.encode(), message, r.choice([hashlib.sha384, hashlib.sha512])
        ).digest()
    elif roll < 0.85:
        sig = hmac.new(OTHER_SECRET.encode(), message, hashlib.sha256).digest()
    else:
        sig = r.randbytes(r.randrange(80))
    return ".".join([*parts, b64(sig)])


def request_headers(r: random.Random, genuine: str, cookie: bytes) -> list[tuple[bytes, bytes]]:
    """Authorization/Cookie/other headers holding the genuine token, broken copies or junk."""

    def token() -> bytes:
        roll = r.random()
        raw = genuine.encode()
        if roll < 0.4:
            return raw
        if roll < 0.6:
            at = r.randrange(len(raw))
            return raw[:at] + r.choice(B64URL).encode() + raw[at + 1 :]
        if roll < 0.7:
            return raw + b" "
        return r.randbytes(r.randrange(120))

    headers: list[tuple[bytes, bytes]] = []
    for _ in range(r.randrange(5)):
        roll = r.random()
        if roll < 0.4:
            scheme = r.choice(
                [b"Bearer ", b"bearer ", b"BEARER ", b"Bearer", b"Basic ", b"Bearer  "]
            )
            headers.append((b"authorization", scheme + token()))
        elif roll < 0.7:
            form = r.choice([b"%s=%s", b'a=1; %s="%s"; %s=x', b"%s=%s;%s=y"])
            filled = form.replace(b"%s", cookie, 1).replace(b"%s", token(), 1)
            headers.append((b"cookie", filled.replace(b"%s", cookie)))
        else:
            name = r.choice([b"authorization ", b"x-forwarded-for", b"Authorization", b""])
            headers.append((name, r.randbytes(r.randrange(60))))
    return headers
