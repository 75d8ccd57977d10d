"""Signing and verification keys: :class:`Key` values gathered in a :class:`KeyRing`.

A :class:`Key` is one key with its ``kid`` and the one algorithm it is used
with (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA). A
:class:`KeyRing` holds several: one signs (the first, or the one named by
``signing=``), all verify until they are removed, so keys rotate without
logging anyone out. Tokens name their key in the ``kid`` header; a token whose
``kid`` is unknown, or whose ``alg`` is not its key's, is refused.

``RedisJWT(secret=...)`` builds a ring of one HMAC key without ``kid``
(:meth:`KeyRing.from_secret`); tokens then carry no ``kid``.

Keys of the wrong family are refused when they are built, with a message that
says what to do instead: a PEM, SSH key or JWK passed as an HMAC secret (the
HS/RS confusion of RFC 8725 section 2.1), an HMAC algorithm for an asymmetric
key or the reverse, an EC key on the wrong curve, an RSA key under 2048 bits,
or a public key asked to sign.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jwt import PyJWK, PyJWTError
from jwt.utils import base64url_decode

from ._key_families import (
    HMAC_ALGORITHMS,
    PRIVATE_KEY_TYPES,
    Algorithm,
    b64,
    check_algorithm,
    check_kid,
    family_algorithm,
    public_jwk,
    secret_bytes,
)
from .errors import ConfigurationError

__all__ = ["Algorithm", "Key", "KeyRing"]


class Key:
    """One signing or verification key: its ``kid``, its algorithm and the key itself.

    Build keys with :meth:`hmac`, :meth:`from_pem` or :meth:`from_jwk`. A key
    holding a private (or HMAC) part can sign; a public key only verifies. The
    key material never appears in ``repr``.

    Attributes:
        kid: the key id tokens carry in their ``kid`` header (``None`` only for
            the kid-less HMAC key of ``secret=``).
        algorithm: the only algorithm tokens of this key may use.
    """

    __slots__ = ("_public_jwk", "_signer", "algorithm", "jwk", "kid")

    kid: str | None
    algorithm: str
    #: The prepared PyJWT verification key.
    jwk: PyJWK

    def __init__(self, kid: str | None, algorithm: str, *, signer: Any, verifier: Any) -> None:
        """Internal: use :meth:`hmac`, :meth:`from_pem` or :meth:`from_jwk`."""
        self.kid = kid
        self.algorithm = algorithm
        self._signer = signer
        if algorithm in HMAC_ALGORITHMS:
            self._public_jwk: dict[str, Any] | None = None
            self.jwk = PyJWK({"kty": "oct", "k": b64(verifier)}, algorithm)
        else:
            public = public_jwk(verifier, algorithm)
            self._public_jwk = {**public, "kid": kid, "alg": algorithm, "use": "sig"}
            self.jwk = PyJWK(public, algorithm)

    def __repr__(self) -> str:
        kind = "hmac" if self.is_symmetric else ("private" if self.can_sign else "public")
        return f"Key(kid={self.kid!r}, algorithm={self.algorithm!r}, {kind})"

    @classmethod
    def hmac(cls, kid: str | None, secret: str | bytes, algorithm: str = "HS256") -> Key:
        """A shared-secret key (HS256, HS384 or HS512).

        Args:
            kid: the key id (``None`` only to keep verifying tokens made with ``secret=``).
            secret: at least as many bytes as the hash output (32, 48 or 64).
            algorithm: ``HS256``, ``HS384`` or ``HS512``.

        Raises:
            ConfigurationError: for a short secret, one that looks like a PEM/SSH
                key or a JWK, or an asymmetric algorithm.
        """
        check_algorithm(algorithm)
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigurationError(
                f"{algorithm} is asymmetric and needs a private key, not a shared secret: "
                f"use Key.from_pem(kid, pem, {algorithm!r}) or Key.from_jwk(jwk)"
            )
        raw = secret_bytes(secret, algorithm)
        return cls(None if kid is None else check_kid(kid), algorithm, signer=raw, verifier=raw)

    @classmethod
    def from_pem(
        cls,
        kid: str,
        pem: str | bytes,
        algorithm: str | None = None,
        *,
        password: bytes | None = None,
    ) -> Key:
        """An asymmetric key from PEM: a private key (signs), a public key or a certificate.

        Args:
            kid: the key id.
            pem: the PEM text (``-----BEGIN PRIVATE KEY-----`` and the like).
            algorithm: e.g. ``RS256``, ``PS256``, ``ES256``, ``EdDSA``; inferred
                from the key when omitted (RSA: RS256, EC: by curve, Ed25519: EdDSA).
            password: the password of an encrypted private key.

        Raises:
            ConfigurationError: when ``pem`` is not a supported key, or does
                not fit ``algorithm``.
        """
        kid = check_kid(kid)
        data = pem.encode() if isinstance(pem, str) else pem
        if not isinstance(data, bytes) or b"-----BEGIN" not in data:
            raise ConfigurationError(
                f"key {kid!r}: pem must be PEM text (-----BEGIN ...); an HMAC secret goes to "
                "Key.hmac(kid, secret)"
            )
        private: Any = None
        public: Any
        try:
            if b"CERTIFICATE-----" in data:
                public = x509.load_pem_x509_certificate(data).public_key()
            elif b"PUBLIC KEY-----" in data:
                public = load_pem_public_key(data)
            else:
                private = load_pem_private_key(data, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"key {kid!r}: cannot load the PEM: {exc}") from exc
        if private is not None:
            if not isinstance(private, PRIVATE_KEY_TYPES):
                raise ConfigurationError(
                    f"key {kid!r} is a {type(private).__name__}; supported keys are RSA, EC "
                    "(P-256/384/521) and Ed25519/Ed448"
                )
            public = private.public_key()
        algorithm = family_algorithm(public, algorithm, f"key {kid!r}")
        return cls(kid, algorithm, signer=private, verifier=public)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any] | str) -> Key:
        """A key from a JWK (a dict or its JSON text), public or private.

        The JWK must have a ``kid``; ``alg`` is inferred when absent (``oct``:
        HS256, ``RSA``: RS256, ``EC``: by curve, ``OKP``: EdDSA). A JWK whose
        ``use`` is not ``sig`` is refused.

        Raises:
            ConfigurationError: for malformed JWKs and family mix-ups.
        """
        if isinstance(jwk, str):
            try:
                jwk = json.loads(jwk)
            except ValueError as exc:
                raise ConfigurationError(f"the JWK is not valid JSON: {exc}") from exc
        if not isinstance(jwk, Mapping):
            raise ConfigurationError(f"a JWK must be a JSON object, not {type(jwk).__name__}")
        data = dict(jwk)
        kid = check_kid(data.get("kid"))
        if data.get("use", "sig") != "sig":
            raise ConfigurationError(f"key {kid!r} has use={data['use']!r}; only 'sig' keys sign")
        algorithm = data.get("alg")
        if algorithm is not None:
            check_algorithm(algorithm)
        kty = data.get("kty")
        if kty == "oct":
            if algorithm is not None and algorithm not in HMAC_ALGORITHMS:
                raise ConfigurationError(
                    f"key {kid!r} is a shared secret (kty 'oct') and cannot be used with "
                    f"{algorithm}; give it an HMAC alg (HS256, HS384, HS512)"
                )
            try:
                raw = base64url_decode(str(data["k"]))
            except (KeyError, ValueError) as exc:
                raise ConfigurationError(f"key {kid!r}: 'k' must be base64url") from exc
            return cls.hmac(kid, raw, algorithm or "HS256")
        if kty not in ("RSA", "EC", "OKP"):
            raise ConfigurationError(f"key {kid!r} has kty {kty!r}; supported: oct, RSA, EC, OKP")
        if algorithm in HMAC_ALGORITHMS:
            raise ConfigurationError(
                f"key {kid!r} is an asymmetric {kty} key and cannot be used with {algorithm}"
            )
        try:
            loaded = PyJWK(data, algorithm or ("EdDSA" if kty == "OKP" else None)).key
        except (PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise ConfigurationError(f"key {kid!r}: cannot load the JWK: {exc}") from exc
        private = loaded if isinstance(loaded, PRIVATE_KEY_TYPES) else None
        public = loaded.public_key() if private is not None else loaded
        algorithm = family_algorithm(public, algorithm, f"key {kid!r}")
        return cls(kid, algorithm, signer=private, verifier=public)

    @property
    def is_symmetric(self) -> bool:
        """Whether this is an HMAC key (never published in a JWKS)."""
        return self.algorithm in HMAC_ALGORITHMS

    @property
    def can_sign(self) -> bool:
        """Whether this key holds what signing needs (a private key or a secret)."""
        return self._signer is not None

    @property
    def signing_key(self) -> Any:
        """The key object PyJWT signs with (raises for a public key)."""
        if self._signer is None:
            raise ConfigurationError(f"key {self.kid!r} is a public key and cannot sign")
        return self._signer

    def public_jwk(self) -> dict[str, Any] | None:
        """The public JWK (with ``kid``, ``alg``, ``use: sig``); ``None`` for HMAC keys."""
        return None if self._public_jwk is None else dict(self._public_jwk)


class KeyRing:
    """The keys of one :class:`~redis_jwt.RedisJWT`: one signs, all verify.

    Args:
        keys: the keys, the signing one usually first.
        signing: the ``kid`` of the key that signs (default: the first key).
        verify_only: build a ring that only verifies (e.g. from a published
            JWKS); :meth:`~redis_jwt.RedisJWT.sign` then raises.

    Raises:
        ConfigurationError: for no keys, duplicate ``kid`` values, an unknown
            ``signing`` kid, or a signing key that cannot sign.
    """

    __slots__ = ("_by_kid", "_keys", "_signing", "algorithms")

    def __init__(
        self, keys: Iterable[Key], *, signing: str | None = None, verify_only: bool = False
    ) -> None:
        self._keys: tuple[Key, ...] = tuple(keys)
        if not self._keys:
            raise ConfigurationError("a KeyRing needs at least one Key")
        self._by_kid: dict[str | None, Key] = {}
        for key in self._keys:
            if not isinstance(key, Key):
                raise ConfigurationError(
                    f"keys must be Key values (Key.hmac, Key.from_pem, Key.from_jwk), "
                    f"not {type(key).__name__}"
                )
            if key.kid in self._by_kid:
                raise ConfigurationError(
                    f"two keys share kid {key.kid!r}; every kid must be unique"
                )
            self._by_kid[key.kid] = key
        self._signing: Key | None = None
        if not verify_only:
            chosen = self._keys[0] if signing is None else self._by_kid.get(signing)
            if chosen is None:
                raise ConfigurationError(f"signing={signing!r} names no key of this ring")
            if not chosen.can_sign:
                raise ConfigurationError(
                    f"key {chosen.kid!r} is a public key and cannot sign; put a private key "
                    "first or name it with signing=..., or pass verify_only=True for a "
                    "service that only verifies"
                )
            self._signing = chosen
        #: Every algorithm some key accepts; nothing else is ever accepted.
        self.algorithms: tuple[str, ...] = tuple(sorted({k.algorithm for k in self._keys}))

    def __repr__(self) -> str:
        signing = None if self._signing is None else self._signing.kid
        return f"KeyRing({list(self._keys)!r}, signing={signing!r})"

    @classmethod
    def from_secret(cls, secret: object, algorithm: str = "HS256") -> KeyRing:
        """Build a ring with one HMAC key and no ``kid`` (what ``secret=`` does).

        Raises:
            ConfigurationError: for a short secret, one that looks like an
                asymmetric key, or a non-HMAC algorithm.
        """
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigurationError(
                f"secret= works with {', '.join(HMAC_ALGORITHMS)}, not {algorithm!r}; "
                "use keys=[Key.from_pem(kid, pem)] for asymmetric algorithms"
            )
        if not isinstance(secret, str | bytes):
            raise ConfigurationError(f"secret must be str or bytes, not {type(secret).__name__}")
        return cls([Key.hmac(None, secret, algorithm)])

    @classmethod
    def from_jwks(
        cls,
        source: Mapping[str, Any] | str | os.PathLike[str],
        *,
        signing: str | None = None,
        verify_only: bool = False,
    ) -> KeyRing:
        """Build a ring from a JWK Set: a dict, its JSON text, or the path of a JSON file.

        A string that starts with ``{`` is JSON; any other string is a path.

        Raises:
            ConfigurationError: for an unreadable or malformed set, or bad keys.
        """
        document: object = source
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and not source.lstrip().startswith("{")
        ):
            try:
                document = Path(source).read_text("utf-8")
            except OSError as exc:
                raise ConfigurationError(f"cannot read the JWK Set file {source!r}: {exc}") from exc
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise ConfigurationError(f"the JWK Set is not valid JSON: {exc}") from exc
        members = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(members, list):
            raise ConfigurationError('a JWK Set is a JSON object {"keys": [...]}')
        return cls(
            [Key.from_jwk(member) for member in members],
            signing=signing,
            verify_only=verify_only,
        )

    @property
    def keys(self) -> tuple[Key, ...]:
        """Every key, in order."""
        return self._keys

    @property
    def signing(self) -> Key | None:
        """The key new tokens are signed with (``None`` for a verify-only ring)."""
        return self._signing

    @property
    def signing_kid(self) -> str | None:
        """The ``kid`` new tokens carry (``None`` with ``secret=``)."""
        return None if self._signing is None else self._signing.kid

    @property
    def signing_algorithm(self) -> str:
        """The algorithm new tokens are signed with."""
        return self._signer().algorithm

    @property
    def signing_key(self) -> Any:
        """The key object PyJWT signs with."""
        return self._signer().signing_key

    def _signer(self) -> Key:
        if self._signing is None:
            raise ConfigurationError(
                "this KeyRing only verifies (verify_only=True); add a private key to sign"
            )
        return self._signing

    def for_kid(self, kid: object) -> Key | None:
        """Return the key a token's ``kid`` names (``None``: no ``kid``), if it is configured."""
        if kid is not None and not isinstance(kid, str):
            return None
        return self._by_kid.get(kid)

    @property
    def single(self) -> Key | None:
        """The only key, when there is exactly one (the common, fast case)."""
        return self._keys[0] if len(self._keys) == 1 else None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set (``{"keys": [...]}``): public parts only, HMAC keys never."""
        return {"keys": [jwk for key in self._keys if (jwk := key.public_jwk()) is not None]}


def as_key_ring(value: object) -> KeyRing:
    """Return the :class:`KeyRing` that ``keys=`` describes.

    Accepts a ring, one :class:`Key`, an iterable of keys, or a JWK Set dict.
    """
    if isinstance(value, KeyRing):
        return value
    if isinstance(value, Key):
        return KeyRing([value])
    if isinstance(value, str | bytes):
        raise ConfigurationError(
            "keys= takes Key values or a KeyRing; pass an HMAC secret as secret=..., and a "
            "JWK Set file or JSON as keys=KeyRing.from_jwks(...)"
        )
    if isinstance(value, Mapping):
        return KeyRing.from_jwks(value)
    if isinstance(value, Iterable):
        return KeyRing(value)
    raise ConfigurationError(f"keys= cannot be a {type(value).__name__}")
