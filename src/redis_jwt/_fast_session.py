"""Building :class:`~redis_jwt.Session` values for every ``verify``, for less.

``Session`` stays a frozen pydantic model (the public contract). Its values
come from checked claims and Redis, so ``verify`` never validates them:
``Session.model_construct`` still walks every field for defaults and aliases
(about 5 µs, a tenth of a whole ``verify`` under load), so the instance is
filled directly (see :func:`redis_jwt._compat.direct_constructor`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ._compat import direct_constructor
from .models import Session

__all__ = ["new_session"]

_AT = datetime(2025, 1, 1, tzinfo=UTC)
_build = direct_constructor(
    Session,
    {
        "user_id": "u",
        "session_id": "s",
        "data_token": {"a": 1},
        "data_session": None,
        "issued_at": _AT,
        "expires_at": _AT,
        "ttl": 1,
        "claims": {"sub": "u"},
    },
)


def new_session(
    *,
    user_id: str,
    session_id: str,
    data_token: dict[str, Any],
    data_session: dict[str, Any] | None,
    issued_at: datetime,
    expires_at: datetime,
    ttl: int,
    claims: dict[str, Any],
) -> Session:
    """Build a ``Session`` from values that need no validation (every field given)."""
    return _build(
        {
            "user_id": user_id,
            "session_id": session_id,
            "data_token": data_token,
            "data_session": data_session,
            "issued_at": issued_at,
            "expires_at": expires_at,
            "ttl": ttl,
            "claims": claims,
        }
    )
