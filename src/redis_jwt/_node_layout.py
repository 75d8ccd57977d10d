"""Layout ``"redis-jwt"``: the keys, values and claims of the Node package redis-jwt 1.4.0.

Byte for byte what the Node package writes (see docs/node-interop.md)::

    <user id>:<session id>    STRING  {"rjwt":"<user id>:<session id>","dataSession":{...}}
                                      (dataSession only when given), SET ... EX <ttl>

and the token, HS256 with the shared secret::

    {"rjwt":"<user id>:<session id>","dataToken":{...},"iat":<seconds>}

(``dataToken`` only when given, no ``exp``). There is no prefix and no per-user
index: the Node package finds a user's sessions with ``KEYS <user id>:*``.

Stricter than Node on purpose: user ids holding ``:`` or a glob character are
refused on both sign and verify (Node truncates ``a:b`` to ``a`` and lets ``*``
match every user), and a stored value is only taken for a session when its
``rjwt`` names its own key.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from typing import Any, ClassVar

from ._layout import is_user_id
from ._tokens import TokenCodec, dumps
from .errors import InvalidToken, InvalidUserId

__all__ = [
    "NODE_SESSION_ID_CHARS",
    "NodeTokenCodec",
    "check_node_user_id",
    "is_node_user_id",
    "new_node_session_id",
    "node_key",
    "node_pattern",
    "node_value",
    "parse_node_value",
    "split_node_key",
]

NODE_SESSION_ID_CHARS = 11
_ALPHABET = string.ascii_letters + string.digits
# ':' separates the id from the session id; the rest are glob characters of
# KEYS/SCAN patterns, which Node (and our scan) build from the user id.
_FORBIDDEN = frozenset(":*?[]\\")
_NODE_SID = re.compile(r"[A-Za-z0-9]{11,64}")
# 9999-12-31T23:59:59Z, the last second a datetime can hold.
_LATEST_TIMESTAMP = 253_402_300_799


def new_node_session_id() -> str:
    """Return 11 characters of ``[A-Za-z0-9]`` from :mod:`secrets` (about 65 bits), as Node does."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(NODE_SESSION_ID_CHARS))


def is_node_user_id(value: object) -> bool:
    """Tell whether ``value`` can name a user in this layout (no ``:``, no glob characters)."""
    return is_user_id(value) and _FORBIDDEN.isdisjoint(value)


def check_node_user_id(user_id: object) -> str:
    """Return ``user_id`` or raise :class:`ConfigurationError` when this layout cannot hold it."""
    if is_node_user_id(user_id):
        return str(user_id)
    raise InvalidUserId(
        f"layout='redis-jwt' needs user ids without ':', '*', '?', '[', ']' or '\\' "
        f"(the Node package uses them in KEYS patterns), got {user_id!r}; "
        "use layout v1 for arbitrary user ids"
    )


def is_node_session_id(value: object) -> bool:
    """Tell whether ``value`` looks like a session id of this layout."""
    return isinstance(value, str) and _NODE_SID.fullmatch(value) is not None


def node_key(user_id: str, session_id: str) -> str:
    """Return the key of one session: ``<user id>:<session id>``."""
    return f"{user_id}:{session_id}"


def node_pattern(user_id: str) -> str:
    """Return the ``SCAN MATCH`` pattern of a user's keys (the id holds no glob character)."""
    return f"{user_id}:*"


def split_node_key(key: object) -> tuple[str, str] | None:
    """Return ``(user id, session id)`` for a session key ``<user id>:<session id>``, else None."""
    if not isinstance(key, str):
        return None
    user_id, colon, session_id = key.partition(":")
    if not colon or not is_node_user_id(user_id) or not is_node_session_id(session_id):
        return None
    return user_id, session_id


def node_value(key: str, data_session: dict[str, Any] | None) -> str:
    """Serialise a session value the way Node's ``JSON.stringify`` does."""
    value: dict[str, Any] = {"rjwt": key}
    if data_session is not None:
        value["dataSession"] = data_session
    return dumps(value)


def parse_node_value(key: str, raw: str | None) -> dict[str, Any] | None:
    """Return the stored object when ``raw`` is a session value of ``key``, else ``None``."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("rjwt") != key:
        return None
    return value


class NodeTokenCodec(TokenCodec):
    """The tokens of the Node package: ``rjwt``, optional ``dataToken``, ``iat``, no ``exp``.

    ``exp`` and ``nbf`` are enforced when present, as jsonwebtoken does.
    """

    required: ClassVar[tuple[str, ...]] = ("rjwt", "iat")

    __slots__ = ()

    def _check_claims(self, claims: dict[str, Any]) -> None:
        # No exp, so no lifetime check bounds these: bound them here, or a huge
        # iat would break datetime conversions (found by tests/test_fuzz.py).
        for name in ("iat", "exp", "nbf"):
            if name in claims:
                value = claims[name]
                if type(value) is not int or not 0 <= value <= _LATEST_TIMESTAMP:
                    raise InvalidToken(f"{name} must be a Unix time in whole seconds")
        if split_node_key(claims["rjwt"]) is None:
            raise InvalidToken("rjwt must be <user id>:<session id>")
