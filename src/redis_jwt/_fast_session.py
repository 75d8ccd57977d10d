"""Building :class:`~redis_jwt.Session` values for every ``verify``, for less.

``Session`` stays a frozen pydantic model (the public contract). Its values
come from checked claims and Redis, so ``verify`` never validates them:
it used ``Session.model_construct``, which still walks every field for
defaults and aliases (about 5 µs, a tenth of a whole ``verify`` under load).
:func:`new_session` fills the instance the way ``model_construct`` does, with
every field given: the field dict, the set of fields given, no extra fields,
no private attributes. At import it builds one session both ways and
compares them; should a pydantic release store models differently, it falls
back to ``model_construct``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from .models import Session

__all__ = ["new_session"]

_FIELDS = frozenset(Session.model_fields)
# What a pydantic 2 model instance holds; model_construct fills the same.
_SLOTS = {"__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"}
_new = object.__new__
_set = object.__setattr__


def _direct(
    user_id: str,
    session_id: str,
    data_token: dict[str, Any],
    data_session: dict[str, Any] | None,
    issued_at: datetime,
    expires_at: datetime,
    ttl: int,
    claims: dict[str, Any],
) -> Session:
    session: Session = _new(Session)
    _set(
        session,
        "__dict__",
        {
            "user_id": user_id,
            "session_id": session_id,
            "data_token": data_token,
            "data_session": data_session,
            "issued_at": issued_at,
            "expires_at": expires_at,
            "ttl": ttl,
            "claims": claims,
        },
    )
    _set(session, "__pydantic_fields_set__", set(_FIELDS))
    _set(session, "__pydantic_extra__", None)
    _set(session, "__pydantic_private__", None)
    return session


def _constructed(
    user_id: str,
    session_id: str,
    data_token: dict[str, Any],
    data_session: dict[str, Any] | None,
    issued_at: datetime,
    expires_at: datetime,
    ttl: int,
    claims: dict[str, Any],
) -> Session:
    return Session.model_construct(
        user_id=user_id,
        session_id=session_id,
        data_token=data_token,
        data_session=data_session,
        issued_at=issued_at,
        expires_at=expires_at,
        ttl=ttl,
        claims=claims,
    )


def _same_as_pydantic() -> bool:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    args = ("u", "s", {"a": 1}, None, at, at, 1, {"sub": "u"})
    try:
        ours, theirs = _direct(*args), _constructed(*args)
        return (
            set(BaseModel.__slots__) == _SLOTS
            and ours.__dict__ == theirs.__dict__
            and ours.__pydantic_fields_set__ == theirs.__pydantic_fields_set__
            and ours.__pydantic_extra__ == theirs.__pydantic_extra__
            and ours.__pydantic_private__ == theirs.__pydantic_private__
            and ours == theirs
            and set(ours.__dict__) == _FIELDS
        )
    except Exception:  # pragma: no cover - a pydantic that stores models differently
        return False


#: Build a ``Session`` from values that need no validation (every field given).
new_session = _direct if _same_as_pydantic() else _constructed
