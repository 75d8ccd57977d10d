"""Building :class:`~redis_jwt.Session` values for every ``verify``, for less.

``Session`` stays a frozen pydantic model (the public contract). Its values
come from checked claims and Redis, so ``verify`` never validates them:
``Session.model_construct`` still walks every field for defaults and aliases
(about 5 µs, a tenth of a whole ``verify`` under load), so the instance is
filled directly (see :func:`redis_jwt._compat.direct_constructor`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from ._compat import direct_constructor
from .models import Session

__all__ = ["new_session"]

_AT = datetime(2025, 1, 1, tzinfo=UTC)
#: Build a ``Session`` from the dict of every field's value (no validation).
new_session = direct_constructor(
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
