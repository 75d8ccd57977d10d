"""redis-jwt: asyncio login sessions with JWT + Redis, shared by every app instance.

    from redis_jwt import RedisJWT

    auth = RedisJWT(secret=..., redis_url="redis://127.0.0.1:6379/0", ttl="1 day")
    async with auth:
        token = await auth.sign("user-1")
        session = await auth.verify(token)

The core imports no web framework; see :mod:`redis_jwt.starlette` and
:mod:`redis_jwt.fastapi` for the adapters and :mod:`redis_jwt.testing` for a
real-Redis test harness.
"""

from . import errors
from .__about__ import __version__
from ._core import RedisJWT
from .events import EventBus, Subscription
from .keys import Key, KeyRing
from .models import ClientInfo, Event, Session, SessionInfo, TokenPair
from .settings import Settings

__all__ = [
    "ClientInfo",
    "Event",
    "EventBus",
    "Key",
    "KeyRing",
    "RedisJWT",
    "Session",
    "SessionInfo",
    "Settings",
    "Subscription",
    "TokenPair",
    "__version__",
    "errors",
]
