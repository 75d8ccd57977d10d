"""What makes a key fit its algorithm: the family checks behind :mod:`redis_jwt.keys`.

Every check raises :class:`~redis_jwt.errors.ConfigurationError` with a message
that says what to do instead.
"""

from __future__ import annotations

import base64
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from .errors import ConfigurationError

__all__ = [
    "ALGORITHMS",
    "HMAC_ALGORITHMS",
    "PRIVATE_KEY_TYPES",
    "Algorithm",
    "b64",
    "check_algorithm",
    "check_kid",
    "family_algorithm",
    "public_jwk",
    "secret_bytes",
]

#: The algorithms a :class:`Key` can use. ``none`` is not one of them.
Algorithm = Literal[
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
_MAX_KID_CHARS = 256
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

PRIVATE_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_HOW_TO_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(64))'"


def check_algorithm(algorithm: object) -> str:
    if algorithm not in ALGORITHMS:
        raise ConfigurationError(
            f"algorithm {algorithm!r} is not supported; use one of {', '.join(ALGORITHMS)} "
            "('none' is never accepted)"
        )
    return str(algorithm)


def check_kid(kid: object) -> str:
    if (
        not isinstance(kid, str)
        or not 0 < len(kid) <= _MAX_KID_CHARS
        or not kid.isprintable()
        or not kid.isascii()
    ):
        raise ConfigurationError(
            f"kid must be 1-{_MAX_KID_CHARS} printable ASCII characters, got {kid!r}; "
            "every key of a key set needs its own kid (e.g. '2025-06-rs256')"
        )
    return kid


def secret_bytes(secret: object, algorithm: str) -> bytes:
    if isinstance(secret, str):
        raw = secret.encode("utf-8")
    elif isinstance(secret, bytes):
        raw = secret
    else:
        raise ConfigurationError(f"secret must be str or bytes, not {type(secret).__name__}")
    stripped = raw.lstrip()
    # An asymmetric key or a JWK handed over as an HMAC secret means the caller
    # confused key families; signing with it would let anyone holding the
    # public half forge tokens (the classic RS/HS confusion).
    if stripped.startswith((b"-----BEGIN", b"ssh-", b"ecdsa-", b"{")):
        raise ConfigurationError(
            "secret looks like a PEM/SSH key or a JWK, not an HMAC secret; load asymmetric "
            "keys with Key.from_pem(kid, pem) or Key.from_jwk(jwk) and pass keys=[...]"
        )
    least = max(MIN_SECRET_BYTES, _HMAC_MIN_BYTES.get(algorithm, MIN_SECRET_BYTES))
    if len(raw) < least:
        raise ConfigurationError(
            f"an {algorithm} secret must be at least {least} bytes (got {len(raw)}); "
            f"generate one with {_HOW_TO_GENERATE}"
        )
    return raw


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def family_algorithm(public: object, algorithm: str | None, what: str) -> str:
    """Return the algorithm for ``public`` (inferred when ``None``) or explain the mismatch."""
    if algorithm in HMAC_ALGORITHMS:
        raise ConfigurationError(
            f"{algorithm} takes a shared secret, but {what} is an asymmetric key; use an "
            "asymmetric algorithm (RS256, PS256, ES256, EdDSA) or Key.hmac(kid, secret)"
        )
    if algorithm is not None:
        check_algorithm(algorithm)
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise ConfigurationError(
                f"{what} is a {public.key_size}-bit RSA key; use at least {MIN_RSA_BITS} bits"
            )
        algorithm = algorithm or "RS256"
        if algorithm in _RSA_ALGORITHMS:
            return algorithm
        expected = "RS256, RS384, RS512, PS256, PS384 or PS512"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        curve = public.curve.name
        fitting = [alg for alg, name in _EC_CURVES.items() if name == curve]
        if not fitting:
            raise ConfigurationError(
                f"{what} is on curve {curve}; use P-256 (ES256), P-384 (ES384) or P-521 (ES512)"
            )
        algorithm = algorithm or fitting[0]
        if algorithm == fitting[0]:
            return algorithm
        expected = fitting[0]
    elif isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        algorithm = algorithm or "EdDSA"
        if algorithm == "EdDSA":
            return algorithm
        expected = "EdDSA"
    else:
        raise ConfigurationError(
            f"{what} is a {type(public).__name__}; supported keys are RSA, EC "
            "(P-256/384/521) and Ed25519/Ed448"
        )
    raise ConfigurationError(f"{what} cannot be used with {algorithm}; its algorithm is {expected}")


def public_jwk(public: Any, algorithm: str) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(get_default_algorithms()[algorithm].to_jwk(public, as_dict=True))
    if _PRIVATE_JWK_MEMBERS & jwk.keys():  # pragma: no cover - PyJWT gives public parts only
        raise ConfigurationError("refusing to publish a private key")
    return jwk
