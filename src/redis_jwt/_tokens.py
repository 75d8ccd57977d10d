"""JWT encoding and strict decoding, on PyJWT."""

from __future__ import annotations

import json
from typing import Any

import jwt

from ._layout import is_session_id, is_user_id
from .errors import ConfigurationError, InvalidToken, MissingToken, TokenExpired
from .keys import KeyRing

__all__ = ["TokenCodec"]

# Headers that point at keys elsewhere, or change how the signature is read:
# never honoured (RFC 8725 section 3.10 and RFC 7797), so never accepted.
_REFUSED_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
_REQUIRED = ("sub", "sid", "iat", "exp")
# Everything a hostile token can make PyJWT or json raise once its size is capped.
_DECODE_ERRORS = (jwt.PyJWTError, ValueError, TypeError, KeyError, OverflowError, RecursionError)


class TokenCodec:
    """Signs claims into tokens and checks tokens strictly."""

    __slots__ = (
        "_audience",
        "_issuer",
        "_jwt",
        "_keys",
        "_leeway",
        "_lifetime_limit",
        "_options",
        "_options_no_exp",
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
        self._jwt = jwt.PyJWT()
        self._leeway = leeway_seconds
        self._issuer = issuer
        self._audience = audience
        self._lifetime_limit = lifetime_limit_seconds
        self.max_token_bytes = max_token_bytes
        # Built once: PyJWT merges these into its defaults on every call.
        base: dict[str, Any] = {"require": list(_REQUIRED), "verify_aud": audience is not None}
        self._options = {**base, "verify_exp": True}
        self._options_no_exp = {**base, "verify_exp": False}

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
        headers = None if self._keys.signing_kid is None else {"kid": self._keys.signing_kid}
        try:
            token = self._jwt.encode(
                claims, self._keys.signing_key, self._keys.signing_algorithm, headers=headers
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"data_token must be JSON-serialisable: {exc}") from exc
        if len(token) > self.max_token_bytes:
            raise ConfigurationError(
                f"the token would be {len(token)} bytes, over max_token_bytes="
                f"{self.max_token_bytes}; keep data_token small and put the rest in data_session"
            )
        return token

    def decode(self, token: object, *, verify_exp: bool = True) -> dict[str, Any]:
        """Check ``token`` and return its claims.

        Raises:
            MissingToken: for ``None`` or an empty string.
            TokenExpired: when ``exp`` has passed (and ``verify_exp``).
            InvalidToken: for anything else that is not a genuine token of ours.
        """
        if not token:
            raise MissingToken("no token was given")
        if not isinstance(token, str):
            raise InvalidToken("the token must be a string")
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large")
        if not token.isascii():
            raise InvalidToken("the token is malformed")
        try:
            key = self._keys.single
            if key is None or key.kid is not None:
                header = jwt.get_unverified_header(token)
                key = self._keys.for_kid(header.get("kid"))
                if key is None:
                    raise InvalidToken("the token names an unknown key")
            decoded = self._jwt.decode_complete(
                token,
                key.jwk,
                algorithms=(key.algorithm,),
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
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        # PyJWT coerces with int(): "123" and True would pass it. We want ints.
        iat, exp = claims["iat"], claims["exp"]
        if type(iat) is not int or type(exp) is not int:
            raise InvalidToken("iat and exp must be integers")
        if not 0 < exp - iat <= self._lifetime_limit:
            raise InvalidToken("the token's lifetime is out of range")
        if not is_user_id(claims["sub"]) or not is_session_id(claims["sid"]):
            raise InvalidToken("sub or sid is malformed")
        dat = claims.get("dat")
        if dat is not None and not isinstance(dat, dict):
            raise InvalidToken("dat must be an object")


def dumps(value: object) -> str:
    """Serialise private session data compactly (the same bytes other languages produce)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
