"""A corpus of hostile tokens, shared by the core and the web tests."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

from .conftest import SECRET


def b64(data: bytes) -> str:
    """Base64url without padding, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(claims: dict[str, Any], *, key: str = SECRET, alg: str = "HS256", **headers: Any) -> str:
    """Sign ``claims`` with PyJWT, as an attacker holding ``key`` would."""
    return jwt.encode(claims, key, algorithm=alg, headers=headers or None)


def raw(header: object, payload: object, signature: str = "c2ln") -> str:
    """Assemble a token from arbitrary JSON-able parts, without a valid signature."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), signature]
    )


def claims(sub: object = "victim", sid: object = "A" * 22, **extra: Any) -> dict[str, Any]:
    """Plausible claims for a session that may or may not exist."""
    now = int(time.time())
    base: dict[str, Any] = {"sub": sub, "sid": sid, "iat": now, "exp": now + 3600}
    base.update(extra)
    return base


def hostile_tokens(genuine: str) -> dict[str, str]:
    """Return named tokens that must all be refused (401), given one genuine token."""
    head, body, sig = genuine.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    now = int(time.time())
    tampered = dict(payload, sub="someone-else")
    return {
        "garbage": "garbage",
        "two segments": f"{head}.{body}",
        "four segments": f"{genuine}.{sig}",
        "empty segments": "..",
        "stripped signature": f"{head}.{body}.",
        "padded signature": f"{genuine}=",
        "doubly padded signature": f"{genuine}==",
        "tampered payload": f"{head}.{b64(json.dumps(tampered).encode())}.{sig}",
        "alg none": raw({"alg": "none", "typ": "JWT"}, payload, ""),
        "alg None": raw({"alg": "None", "typ": "JWT"}, payload, ""),
        "alg NONE": raw({"alg": "NONE", "typ": "JWT"}, payload, ""),
        "alg missing": raw({"typ": "JWT"}, payload, sig),
        "HS384 same secret": forge(payload, alg="HS384"),
        "HS512 same secret": forge(payload, alg="HS512"),
        "wrong secret": forge(payload, key="another-secret-of-at-least-32-bytes!!"),
        "missing sub": forge({k: v for k, v in payload.items() if k != "sub"}),
        "missing sid": forge({k: v for k, v in payload.items() if k != "sid"}),
        "missing exp": forge({k: v for k, v in payload.items() if k != "exp"}),
        "missing iat": forge({k: v for k, v in payload.items() if k != "iat"}),
        "int sub": forge(dict(payload, sub=42)),
        "empty sub": forge(dict(payload, sub="")),
        "list sid": forge(dict(payload, sid=["x"])),
        "short sid": forge(dict(payload, sid="abc")),
        "string exp": forge(dict(payload, exp=str(payload["exp"]))),
        "boolean exp": forge(dict(payload, exp=True)),
        "float exp": forge(dict(payload, exp=payload["exp"] + 0.5)),
        "string iat": forge(dict(payload, iat=str(payload["iat"]))),
        "string nbf": forge(dict(payload, nbf=str(payload["iat"]))),
        "huge lifetime": forge(dict(payload, exp=now + 20 * 365 * 86400)),
        "exp before iat": forge(dict(payload, iat=now, exp=now - 1 + 1)),
        "expired": forge(dict(payload, iat=now - 100, exp=now - 10)),
        "future iat": forge(dict(payload, iat=now + 3600, exp=now + 7200)),
        "non-object dat": forge(dict(payload, dat=[1, 2])),
        "unknown sid": forge(dict(payload, sid="B" * 22)),
        "another user's sub with a valid sid": forge(dict(payload, sub="mallory")),
        "kid injection": forge(payload, kid="../../etc/passwd"),
        "kid sql": forge(payload, kid="' OR 1=1 --"),
        "jku injection": forge(payload, jku="https://evil.example/jwks.json"),
        "x5u injection": forge(payload, x5u="https://evil.example/cert.pem"),
        "jwk injection": forge(payload, jwk={"kty": "oct", "k": b64(b"k" * 32)}),
        "crit unknown": forge(payload, crit=["exp-x"]),
        "b64 false": raw({"alg": "HS256", "b64": False, "crit": ["b64"]}, payload, sig),
        "non-JSON payload": f"{head}.{b64(b'not json')}.{sig}",
        "non-object payload": f"{head}.{b64(b'[1,2,3]')}.{sig}",
        "non-object header": f"{b64(b'[1]')}.{body}.{sig}",
        "deeply nested header": f"{b64(b'[' * 3000 + b']' * 3000)}.{body}.{sig}",
        "huge number exp": forge(dict(payload, exp=10**400)),
        "whitespace": f" {genuine} ",
        "inner whitespace": f"{head}. {body}.{sig}",
        "non-ASCII": genuine + "é",
        "NUL byte": genuine + "\x00",
        "200 kB": "a" * 200_000,
        "CRLF": genuine + "\r\nX-Injected: 1",
        "binary junk": "\x89PNG\r\n\x1a\n",
    }
