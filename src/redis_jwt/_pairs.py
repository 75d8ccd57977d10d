"""Refresh pairs of layout v1 (docs/layout.md, "Refresh pairs"): the tokens of one pair.

A pair is one session. Its access token is a session token like any other,
whose ``exp`` is at most ``access_ttl`` away (never past the session's cap).
Its refresh token carries the session's claims plus ``use: "refresh"`` and
``gen``, the generation of the chain it belongs to; ``refresh.lua`` keeps the
current generation in the session hash and decides, atomically, whether a
presented generation moves the chain on, continues it (the grace) or ends
the session (reuse).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from ._backend import PairRules, utc
from ._compat import direct_constructor
from ._tokens import REFRESH_USE, TokenCodec, dumps
from .errors import ConfigurationError, StoreError
from .models import TokenPair

__all__ = ["PairIssuer", "data_token_json"]


_AT = datetime(2025, 1, 1, tzinfo=UTC)
# TokenPair values are the library's own (signed tokens, computed times):
# filled directly, as Session is (see _fast_session.py), not validated.
_new_pair = direct_constructor(
    TokenPair,
    {
        "access_token": "a",
        "refresh_token": "r",
        "access_expires_at": _AT,
        "refresh_expires_at": _AT,
    },
)


def data_token_json(data_token: dict[str, Any] | None) -> str:
    """The public data a refresh stores (``''``: keep the pair's own).

    Raises:
        ConfigurationError: when ``data_token`` is not JSON-serialisable.
    """
    if data_token is None:
        return ""
    try:
        return dumps(data_token)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"data_token must be JSON-serialisable: {exc}") from exc


def stored_data_token(data_json: str | None) -> dict[str, Any] | None:
    """Public data a refresh stored in the session hash (field ``p``), or None."""
    if not data_json:
        return None
    try:
        value = json.loads(data_json)
    except (ValueError, RecursionError) as exc:
        raise StoreError("the stored public data of the pair is not JSON") from exc
    return value if isinstance(value, dict) else None


class PairIssuer:
    """Signs the two tokens of a pair.

    Args:
        codec: signs the tokens.
        rules: the access token's lifetime.
    """

    __slots__ = ("_codec", "_rules")

    def __init__(self, codec: TokenCodec, rules: PairRules) -> None:
        self._codec = codec
        self._rules = rules

    @property
    def grace_ms(self) -> int:
        """How long a spent refresh token continues its chain."""
        return self._rules.grace_ms

    def encode(
        self,
        *,
        user_id: str,
        session_id: str,
        cap: int,
        generation: int,
        data_token: dict[str, Any] | None,
        iat: int | None = None,
    ) -> tuple[str, str, int]:
        """Return (access token, refresh token, access ``exp``) of one generation.

        ``cap`` is the session's absolute end (the ``exp`` of a plain session
        token); the refresh token carries it, the access token ends earlier.

        Raises:
            ConfigurationError: when the data makes a token too large or is not JSON.
        """
        now = int(time.time()) if iat is None else iat
        base: dict[str, Any] = {"sub": user_id, "sid": session_id, "iat": now, "exp": cap}
        if data_token:
            base["dat"] = data_token
        access_exp = min(now + self._rules.access_seconds, cap)
        access = self._codec.encode({**base, "exp": access_exp})
        refresh = self._codec.encode({**base, "use": REFRESH_USE, "gen": generation})
        return access, refresh, access_exp

    @staticmethod
    def pair(access: str, refresh: str, access_exp: int, ttl_ms: int, cap: int) -> TokenPair:
        """The :class:`TokenPair` of two signed tokens; the refresh token works while the
        session lives (``ttl_ms`` idle, never past ``cap``)."""
        refresh_end = min(time.time() + ttl_ms / 1000, cap)
        return _new_pair(
            {
                "access_token": access,
                "refresh_token": refresh,
                "access_expires_at": utc(access_exp),
                "refresh_expires_at": utc(refresh_end),
            }
        )
