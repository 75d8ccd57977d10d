"""Signing and verification keys.

A :class:`KeyRing` holds one key that signs and any number that verify. With
``secret=`` it holds a single HS256 key without ``kid``; tokens then carry no
``kid`` header, and a token naming one is refused.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK

from .errors import ConfigurationError

__all__ = ["KeyRing", "VerificationKey"]

MIN_SECRET_BYTES = 32
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One key that can check signatures: its ``kid``, algorithm and prepared PyJWT key."""

    kid: str | None
    algorithm: str
    jwk: PyJWK


@dataclass(frozen=True, slots=True)
class _SigningKey:
    kid: str | None
    algorithm: str
    key: Any  # bytes for HMAC, a cryptography private key object otherwise


def _secret_bytes(secret: object) -> bytes:
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
            "secret looks like a PEM/SSH key or a JWK, not an HMAC secret; "
            "pass asymmetric keys with keys=[...] instead"
        )
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"secret must be at least {MIN_SECRET_BYTES} bytes (got {len(raw)}); generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return raw


class KeyRing:
    """The keys of one :class:`~redis_jwt.RedisJWT`: one signs, all verify."""

    __slots__ = ("_by_kid", "_signing", "algorithms")

    def __init__(self, signing: _SigningKey, verifying: list[VerificationKey]) -> None:
        self._signing = signing
        self._by_kid: dict[str | None, VerificationKey] = {k.kid: k for k in verifying}
        #: Every algorithm some key accepts; nothing else is ever accepted.
        self.algorithms: tuple[str, ...] = tuple(sorted({k.algorithm for k in verifying}))

    @classmethod
    def from_secret(cls, secret: object, algorithm: str = "HS256") -> KeyRing:
        """Build a ring with one HMAC key and no ``kid``.

        Raises:
            ConfigurationError: for a secret shorter than 32 bytes, one that
                looks like an asymmetric key, or a non-HMAC algorithm.
        """
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigurationError(
                f"secret= works with {', '.join(HMAC_ALGORITHMS)}, not {algorithm!r}; "
                "use keys=[...] for asymmetric algorithms"
            )
        raw = _secret_bytes(secret)
        jwk = PyJWK(
            {"kty": "oct", "k": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}, algorithm
        )
        return cls(_SigningKey(None, algorithm, raw), [VerificationKey(None, algorithm, jwk)])

    @property
    def signing_kid(self) -> str | None:
        """The ``kid`` new tokens carry (``None`` with ``secret=``)."""
        return self._signing.kid

    @property
    def signing_algorithm(self) -> str:
        """The algorithm new tokens are signed with."""
        return self._signing.algorithm

    @property
    def signing_key(self) -> Any:
        """The key object PyJWT signs with."""
        return self._signing.key

    def for_kid(self, kid: object) -> VerificationKey | None:
        """Return the key a token's ``kid`` names (``None``: no ``kid``), if it is configured."""
        if kid is not None and not isinstance(kid, str):
            return None
        return self._by_kid.get(kid)

    @property
    def single(self) -> VerificationKey | None:
        """The only key, when there is exactly one (the common, fast case)."""
        if len(self._by_kid) == 1:
            return next(iter(self._by_kid.values()))
        return None
