"""Decoding tokens for less: HMAC keys prepared once, and a cache of tokens already checked.

Two costs of PyJWT's ``decode`` are paid again for every request although
nothing changed since the last one:

- **key preparation**: PyJWT checks an HMAC secret on every ``encode`` and
  ``decode`` (is it a PEM, an SSH key, DER, a JWK in JSON?), about a third of
  a decode. :func:`prepared_jwt` (decoding) and :func:`prepared_jws`
  (signing) build private PyJWT objects whose HMAC algorithms are a subclass
  of PyJWT's own, registered with PyJWT's public ``register_algorithm``: its
  ``prepare_key`` returns the ring's secrets, checked once at construction by
  PyJWT's own ``prepare_key``, as they are, and hands anything else to
  PyJWT's checks. Signatures are still computed and compared by PyJWT.
- **serialising the claims twice on sign**: the codec checked them with its
  own ``json.dumps`` and ``PyJWT.encode`` serialised them again;
  :func:`json_payload` gives the exact bytes ``PyJWT.encode`` would sign, for
  ``PyJWS.encode`` (the same token, one serialisation).
- **the whole check of a token seen before**: a client sends the same token
  with every request. :class:`TokenCache` remembers, by the exact token
  string, the claims of tokens that passed every check (signature, header,
  claims), so a repeated token skips the signature work. ``exp`` is *always*
  checked again against the clock, with the configured leeway; a token that
  failed a check is never remembered. It holds at most
  :data:`MAX_ENTRIES` tokens and :data:`MAX_CHARS` characters of them
  (least recently used go first), only tokens of at most
  :data:`MAX_TOKEN_CHARS`, and forgets everything when the key ring changes.
  Callers receive fresh copies of the cached claims, so changing a returned
  ``Session.claims`` or ``data_token`` never changes what the next call sees.
  See docs/decisions.md.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from ._compat import fast_segment_decoding, instance_jws
from .errors import TokenExpired
from .keys import Key, KeyRing

__all__ = [
    "MAX_ENTRIES",
    "TokenCache",
    "json_payload",
    "prepared_jws",
    "prepared_jwt",
    "verification_key",
]

MAX_ENTRIES = 10_000
MAX_CHARS = 4 * 1024 * 1024
MAX_TOKEN_CHARS = 2048
_HASHES = {"HS256": HMACAlgorithm.SHA256, "HS384": HMACAlgorithm.SHA384,
           "HS512": HMACAlgorithm.SHA512}  # fmt: skip


class _PreparedHMAC(HMACAlgorithm):
    """PyJWT's HMAC algorithm, told which secrets it has already checked."""

    def __init__(self, hash_alg: Any, ready: frozenset[bytes]) -> None:
        super().__init__(hash_alg)
        self._ready = ready
        # PyJWT's length check builds a hash object on every call: its answer
        # for each ready secret, once (a short secret still warns on every call).
        check = getattr(super(), "check_key_length", lambda _secret: None)
        self._length_notes: dict[bytes, str | None] = {secret: check(secret) for secret in ready}

    def prepare_key(self, key: str | bytes) -> bytes:
        if type(key) is bytes and key in self._ready:
            return key
        return super().prepare_key(key)

    def check_key_length(self, key: bytes) -> str | None:
        if type(key) is bytes and key in self._length_notes:
            return self._length_notes[key]
        return super().check_key_length(key)


def _hmac_secret(key: Key) -> bytes | None:
    secret = key.jwk.key if key.is_symmetric else None
    return secret if isinstance(secret, bytes) else None


def prepared_jwt(ring: KeyRing) -> jwt.PyJWT:
    """A private ``jwt.PyJWT`` whose HMAC algorithms skip re-checking the ring's secrets.

    Falls back to a plain ``jwt.PyJWT`` when this PyJWT does not give each
    instance its own ``PyJWS`` (its algorithms would then be process-wide).
    """
    instance = jwt.PyJWT()
    jws = instance_jws(instance)
    if jws is None:
        return instance
    _prepare(jws, list(ring.keys))
    fast_segment_decoding(jws)
    return instance


def prepared_jws(ring: KeyRing) -> jwt.PyJWS:
    """A private ``jwt.PyJWS`` for signing, with the same prepared HMAC algorithms."""
    jws = jwt.PyJWS()
    _prepare(jws, [key for key in ring.keys if key.can_sign])
    return jws


def _prepare(jws: jwt.PyJWS, keys: list[Key]) -> None:
    """Register on ``jws`` HMAC algorithms that trust the secrets of ``keys``."""
    secrets: dict[str, set[bytes]] = {}
    for key in keys:
        secret = _hmac_secret(key)
        if secret is not None and key.algorithm in _HASHES:
            # PyJWT's own checks, once: the same errors as on every call before.
            HMACAlgorithm(_HASHES[key.algorithm]).prepare_key(secret)
            secrets.setdefault(key.algorithm, set()).add(secret)
    for name, ready in secrets.items():
        jws.unregister_algorithm(name)
        jws.register_algorithm(name, _PreparedHMAC(_HASHES[name], frozenset(ready)))


# json.dumps(claims, separators=(",", ":"), allow_nan=False), built once.
_PAYLOAD_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def json_payload(claims: dict[str, Any]) -> str:
    """The JSON PyJWT's ``encode`` would sign for ``claims``, refusing NaN and infinities.

    Handing these bytes to ``PyJWS.encode`` signs the very token ``PyJWT.encode``
    would, serialising the claims once instead of twice.

    Raises:
        TypeError: for values JSON cannot hold.
        ValueError: for NaN and infinities.
    """
    return _PAYLOAD_ENCODER.encode(claims)


def verification_key(key: Key, instance: jwt.PyJWT) -> Any:
    """What to pass to ``instance.decode_complete`` for ``key``.

    The prepared secret for an HMAC key of :func:`prepared_jwt`; the key's
    ``PyJWK`` otherwise (PyJWT then pins the algorithm to the key's).
    """
    secret = _hmac_secret(key)
    jws = instance_jws(instance)
    if secret is not None and jws is not None:
        try:
            algorithm = jws.get_algorithm_by_name(key.algorithm)
        except NotImplementedError:
            return key.jwk
        if isinstance(algorithm, _PreparedHMAC):
            return secret
    return key.jwk


_CONTAINERS = (dict, list)


def _fresh(value: Any) -> Any:
    """A copy of the JSON containers in ``value`` (strings and numbers are immutable)."""
    if type(value) is dict:
        return {k: _fresh(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if type(value) is list:
        return [_fresh(v) if type(v) in _CONTAINERS else v for v in value]
    return value


def _shallow(value: Any) -> bool:
    """Whether ``value`` holds no containers (a shallow copy is then a full copy)."""
    for member in value.values() if type(value) is dict else value:
        if type(member) in _CONTAINERS:
            return False
    return True


def _copier(claims: dict[str, Any]) -> tuple[str, ...] | None:
    """How to copy ``claims`` cheaply: the keys of its containers when each is
    shallow (``dat`` of scalars, the usual case), ``None`` when deeper."""
    # A plain loop: paid by every token decoded for the first time, where a
    # generator and all() cost several times more for claims of a few keys.
    keys: tuple[str, ...] = ()
    for k, v in claims.items():
        if type(v) in _CONTAINERS:
            if not _shallow(v):
                return None
            keys += (k,)
    return keys


class TokenCache:
    """Claims of tokens that passed every check, by exact token string (bounded, LRU).

    Args:
        ring: the key ring; a different ring (or a ring whose keys changed)
            empties the cache.
        leeway_seconds: the leeway of the ``exp`` check.
    """

    __slots__ = ("_chars", "_entries", "_keys", "_leeway", "_ring", "hits", "misses")

    def __init__(self, ring: KeyRing, *, leeway_seconds: float) -> None:
        # token -> (claims, exp or None, the keys of its shallow containers or None)
        self._entries: OrderedDict[str, tuple[dict[str, Any], Any, tuple[str, ...] | None]] = (
            OrderedDict()
        )
        self._chars = 0
        self._ring = ring
        self._keys = ring.keys
        self._leeway = leeway_seconds
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every token."""
        self._entries.clear()
        self._chars = 0

    def get(self, token: str, ring: KeyRing, *, verify_exp: bool) -> dict[str, Any] | None:
        """Fresh claims of ``token`` if it passed every check before, else ``None``.

        Raises:
            TokenExpired: when ``verify_exp`` and its ``exp`` has passed.
        """
        if ring is not self._ring or ring.keys is not self._keys:
            self._ring, self._keys = ring, ring.keys
            self.clear()
            return None
        entry = self._entries.get(token)
        if entry is None:
            self.misses += 1
            return None
        claims, exp, containers = entry
        # PyJWT's rule: expired when exp <= now - leeway (Node tokens may have no exp).
        if verify_exp and exp is not None and exp <= time.time() - self._leeway:
            raise TokenExpired("the token has expired")
        self._entries.move_to_end(token)
        self.hits += 1
        if containers is None:  # deeply nested data: copy every level
            fresh: dict[str, Any] = _fresh(claims)
            return fresh
        copy = dict(claims)
        for key in containers:
            copy[key] = copy[key].copy()
        return copy

    def put(self, token: str, claims: dict[str, Any]) -> None:
        """Remember ``token`` after it passed every check (its ``exp`` aside)."""
        size = len(token)
        if size > MAX_TOKEN_CHARS or token in self._entries:
            return
        containers = _copier(claims)
        if containers is None:
            stored: dict[str, Any] = _fresh(claims)
        else:  # the usual case: copies of the shallow containers, as get() makes
            stored = dict(claims)
            for key in containers:
                stored[key] = stored[key].copy()
        self._entries[token] = (stored, claims.get("exp"), containers)
        self._chars += size
        while len(self._entries) > MAX_ENTRIES or self._chars > MAX_CHARS:
            old, _entry = self._entries.popitem(last=False)
            self._chars -= len(old)
