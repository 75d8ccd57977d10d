"""The libraries redis-jwt is compared with, set up the way their documentation shows.

fastapi-users 15 (``RedisStrategy(redis, lifetime_seconds=...)`` on a
``redis.asyncio`` client with ``decode_responses=True``, a ``UUIDIDMixin`` user
manager) and starsessions (``RedisStore(connection=...)`` with its
``JsonSerializer``). The only stand-in is the user database: an in-memory dict
instead of SQLAlchemy or Beanie, so fastapi-users' numbers leave out a
database read that a real application would pay on every request. That
favours fastapi-users, never redis-jwt.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi_users import BaseUserManager, UUIDIDMixin
from fastapi_users.db import BaseUserDatabase

__all__ = ["BenchUser", "InMemoryUserDatabase", "UserManager", "make_users"]

_NOT_A_SECRET = "bench-only: fastapi-users wants these secrets set"


@dataclass(slots=True)
class BenchUser:
    """The smallest object that satisfies fastapi-users' ``UserProtocol``."""

    id: uuid.UUID
    email: str
    hashed_password: str = ""
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class InMemoryUserDatabase(BaseUserDatabase[BenchUser, uuid.UUID]):
    """A user "database" that is a dict: ``get`` is the only call read_token makes."""

    def __init__(self, users: list[BenchUser]) -> None:
        self.users = {user.id: user for user in users}

    async def get(self, id: uuid.UUID) -> BenchUser | None:
        """Return the user with this id, if any."""
        return self.users.get(id)


class UserManager(UUIDIDMixin, BaseUserManager[BenchUser, uuid.UUID]):
    """The user manager of fastapi-users' documentation, without the hooks."""

    reset_password_token_secret = _NOT_A_SECRET
    verification_token_secret = _NOT_A_SECRET


def make_users(count: int) -> list[BenchUser]:
    """Return ``count`` users with fixed UUIDs (1, 2, ...), so every process agrees on them."""
    return [
        BenchUser(id=uuid.UUID(int=n), email=f"user{n}@bench.example") for n in range(1, count + 1)
    ]
