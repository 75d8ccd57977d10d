"""JWT encoding and strict decoding, on PyJWT."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import jwt

from ._layout import is_session_id, is_user_id
from ._token_cache import TokenCache, json_payload, prepared_jws, prepared_jwt, verification_key
from .errors import ConfigurationError, InvalidToken, MissingToken, TokenExpired
from .keys import Key, KeyRing

__all__ = ["REFRESH_USE", "TokenCodec", "dumps"]

# Headers that point at keys elsewhere, or change how the signature is read:
# never honoured (RFC 8725 section 3.10 and RFC 7797), so never accepted.
_REFUSED_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
_REQUIRED = ("sub", "sid", "iat", "exp")
#: The claim that marks a refresh token (its value is ``"refresh"``); session
#: tokens never carry it. Its generation is in ``gen``.
REFRESH_USE = "refresh"
# Everything a hostile token can make PyJWT or json raise once its size is capped.
_DECODE_ERRORS = (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError, RecursionError)


class TokenCodec:
    """Signs claims into tokens and checks tokens strictly (the claims of layout v1)."""

    #: Claims every token must carry.
    required: ClassVar[tuple[str, ...]] = _REQUIRED

    __slots__ = (
        "_audience",
        "_cache",
        "_issuer",
        "_jws",
        "_jwt",
        "_keys",
        "_leeway",
        "_lifetime_limit",
        "_options",
        "_options_no_exp",
        "_verifying",
        "max_token_bytes",
    )

    def __init__(
        self,
        keys: KeyRing,
        *,
        lifetime_limit_seconds: int,
        leeway_seconds: float = 0,
        issuer: str | None = None,
        audience: str | None = None,
        max_token_bytes: int = 8192,
    ) -> None:
        self._keys = keys
        # HMAC secrets checked once, not on every call; tokens seen before skip
        # the signature work (exp is always checked again): see _token_cache.py.
        self._jwt = prepared_jwt(keys)
        self._jws = prepared_jws(keys)
        self._cache = TokenCache(keys, leeway_seconds=leeway_seconds)
        self._leeway = leeway_seconds
        self._issuer = issuer
        self._audience = audience
        self._lifetime_limit = lifetime_limit_seconds
        self.max_token_bytes = max_token_bytes
        # Built once: PyJWT merges these into its defaults on every call.
        base: dict[str, Any] = {
            "require": list(self.required),
            "verify_aud": audience is not None,
        }
        self._options = {**base, "verify_exp": True}
        self._options_no_exp = {**base, "verify_exp": False}
        # id(key) -> (key, what decode_complete is given for it, its algorithms)
        self._verifying: dict[int, tuple[Key, Any, tuple[str]]] = {}

    def encode(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` with the signing key.

        Raises:
            ConfigurationError: when the claims are not JSON-serialisable or the
                token would exceed ``max_token_bytes``.
        """
        if self._issuer is not None:
            claims["iss"] = self._issuer
        if self._audience is not None:
            claims["aud"] = self._audience
        kid, key, algorithm = (
            self._keys.signing_kid,
            self._keys.signing_key,
            self._keys.signing_algorithm,
        )
        try:
            text = json_payload(claims)  # exactly what PyJWT.encode would sign
            if "\\u" in text:  # non-ASCII: the checks of session data (no lone surrogates)
                dumps(claims)
            token = self._jws.encode(
                text.encode(), key, algorithm, headers=None if kid is None else {"kid": kid}
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_token must be JSON-serialisable: {exc}") from exc
        if len(token) > self.max_token_bytes:
            raise ConfigurationError(
                f"the token would be {len(token)} bytes, over max_token_bytes="
                f"{self.max_token_bytes}; keep data_token small and put the rest in data_session"
            )
        return token

    def decode(
        self, token: object, *, verify_exp: bool = True, refresh: bool = False
    ) -> dict[str, Any]:
        """Check ``token`` and return its claims.

        Args:
            token: the JWT.
            verify_exp: whether a passed ``exp`` is refused.
            refresh: expect a refresh token (claim ``use``) instead of a session token;
                each kind is refused where the other is expected.

        Raises:
            MissingToken: for ``None`` or an empty string.
            TokenExpired: when ``exp`` has passed (and ``verify_exp``).
            InvalidToken: for anything else that is not a genuine token of ours.
        """
        if not token:
            raise MissingToken("no token was given")
        if not isinstance(token, str):
            raise InvalidToken("the token must be a string")
        cached = self._cache.get(token, self._keys, verify_exp=verify_exp)
        if cached is not None:
            if ("use" in cached) is not refresh:
                raise InvalidToken(_WRONG_KIND[refresh])
            return cached
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large")
        # PyJWT also accepts '=' padding on the signature segment: a second spelling
        # of the same token, which would slip past any list of token strings.
        if not token.isascii() or "=" in token:
            raise InvalidToken("the token is malformed")
        try:
            # One key: no need to read the header first; its kid is checked below.
            key = self._keys.single
            if key is None:
                key = self._keys.for_kid(jwt.get_unverified_header(token).get("kid"))
                if key is None:
                    raise InvalidToken("the token names an unknown key")
            verifying = self._verifying.get(id(key))
            if verifying is None or verifying[0] is not key:
                verifying = (key, verification_key(key, self._jwt), (key.algorithm,))
                self._verifying[id(key)] = verifying
            decoded = self._jwt.decode_complete(
                token,
                verifying[1],
                algorithms=verifying[2],
                options=self._options if verify_exp else self._options_no_exp,  # type: ignore[arg-type]
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the token has expired") from exc
        except _DECODE_ERRORS as exc:
            raise InvalidToken("the token is invalid") from exc
        header = decoded["header"]
        if header.get("kid") != key.kid or not _REFUSED_HEADERS.isdisjoint(header):
            raise InvalidToken("the token header is not acceptable")
        claims: dict[str, Any] = decoded["payload"]
        self._check_claims(claims)
        if "use" in claims:
            # A refresh token is spent once: remembering it would only push
            # session tokens, which come back with every request, out of the cache.
            if not refresh:
                raise InvalidToken(_WRONG_KIND[refresh])
            return claims
        self._cache.put(token, claims)
        if refresh:
            raise InvalidToken(_WRONG_KIND[refresh])
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        # PyJWT coerces with int(): "123" and True would pass it. We want ints.
        iat, exp = claims["iat"], claims["exp"]
        if type(iat) is not int or type(exp) is not int:
            raise InvalidToken("iat and exp must be integers")
        if "nbf" in claims and type(claims["nbf"]) is not int:
            raise InvalidToken("nbf must be an integer")
        if not 0 < exp - iat <= self._lifetime_limit:
            raise InvalidToken("the token's lifetime is out of range")
        if not is_user_id(claims["sub"]) or not is_session_id(claims["sid"]):
            raise InvalidToken("sub or sid is malformed")
        dat = claims.get("dat")
        if dat is not None and not isinstance(dat, dict):
            raise InvalidToken("dat must be an object")
        if "use" in claims:
            gen = claims.get("gen")
            if claims["use"] != REFRESH_USE or type(gen) is not int or gen < 0:
                raise InvalidToken("use or gen is malformed")


_WRONG_KIND = {
    False: "a refresh token is no session token: pass it to refresh()",
    True: "this is no refresh token",
}


def dumps(value: object) -> str:
    """Serialise private session data compactly (the same bytes other languages produce).

    Raises:
        TypeError: for values JSON cannot hold.
        ValueError: for NaN/Infinity and for strings that are not valid Unicode
            (lone surrogates): they could be stored, but not read back by
            other languages nor serialised again by the app.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # raises UnicodeEncodeError, a ValueError, for lone surrogates
    return text
