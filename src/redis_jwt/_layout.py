"""Key layout v1: how sessions are laid out in Redis (see docs/layout.md).

Every key of one user shares one Redis Cluster hash slot: the user id,
escaped so that it can hold no ``{`` or ``}``, is the key's hash tag.

    <prefix>:{<escaped user id>}:s:<session id>   HASH  the session (expires with it)
    <prefix>:{<escaped user id>}:i                ZSET  session ids scored by expiry (ms)
    <prefix>:{<escaped user id>}:q:<call id>      STRING one call's outcome, until its deadline
    <prefix>:{x<b>}:due      (b = 0..15)          ZSET  expiry schedule: key -> due (ms)
    <prefix>:{x<b>}:gone                          ZSET  recent expiries: key -> reported (ms)

A session key lives in schedule bucket ``crc32(session key) % 16``; each
bucket is its own hash slot, so every script touches one slot only.

Escaping is reversible (``%`` -> ``%25``, ``{`` -> ``%7B``, ``}`` -> ``%7D``),
so a key seen in a keyspace notification tells whose session it was.
"""

from __future__ import annotations

import re
import secrets
import zlib
from typing import TypeGuard

from .errors import ConfigurationError, InvalidUserId

__all__ = ["Layout", "new_session_id"]

LAYOUT_VERSION = 1
#: How many buckets the expiry schedule is sharded over (each its own slot).
SCHEDULE_BUCKETS = 16
MAX_USER_ID_BYTES = 512
# secrets.token_urlsafe(16): 128 random bits in 22 URL-safe characters.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_PREFIX = re.compile(r"[A-Za-z0-9_.\-:]{1,64}")


def new_session_id() -> str:
    """Return a fresh session id: 128 random bits from :mod:`secrets`."""
    return secrets.token_urlsafe(16)


def is_session_id(value: object) -> TypeGuard[str]:
    """Tell whether ``value`` has the shape of a session id this library made."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def is_user_id(value: object) -> TypeGuard[str]:
    """Tell whether ``value`` is an acceptable user id: a non-empty str of at most 512 bytes."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_ID_BYTES:
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_USER_ID_BYTES
    except UnicodeEncodeError:  # lone surrogates cannot be stored as UTF-8
        return False


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` or raise :class:`ConfigurationError` when it cannot name a user."""
    if is_user_id(user_id):
        return user_id
    raise InvalidUserId(
        f"user_id must be a non-empty str of at most {MAX_USER_ID_BYTES} UTF-8 bytes, "
        f"got {_described(user_id)}"
    )


def _described(user_id: object) -> str:
    # Never the id itself: it may be personal data, or megabytes long.
    if isinstance(user_id, str):
        if not user_id:
            return "an empty str"
        size = len(user_id.encode("utf-8", "surrogatepass"))
        return f"a str of {size} bytes" + ("" if user_id.isprintable() else " (unprintable)")
    return type(user_id).__name__


def escape_user_id(user_id: str) -> str:
    """Escape ``user_id`` so that it can serve as a Redis Cluster hash tag."""
    return user_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def unescape_user_id(tag: str) -> str:
    """Invert :func:`escape_user_id`."""
    return tag.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


class Layout:
    """Builds and parses the key names of layout v1 under one prefix."""

    __slots__ = ("_session_marker", "channel", "prefix")

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"prefix={prefix!r} must be 1-64 characters of letters, digits, '_', '-', '.' "
                "or ':' (braces would break the Cluster hash tags)"
            )
        self.prefix = prefix
        #: The pub/sub channel on which the scripts announce session changes.
        self.channel = f"{prefix}:events"
        self._session_marker = "}:s:"

    def user_tag(self, user_id: str) -> str:
        """Return ``<prefix>:{<escaped user id>}``, the start of every key of the user."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}"

    def session_key(self, user_id: str, session_id: str) -> str:
        """Return the key of one session."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}:s:{session_id}"

    def session_prefix(self, user_id: str) -> str:
        """Return ``<prefix>:{<escaped user id>}:s:``, the start of the user's session keys."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}:s:"

    def marker_key(self, user_id: str) -> str:
        """Return the key of the short-lived marker written in the user's slot before ``WAIT``."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}:w"

    def call_key(self, user_id: str, call_id: str) -> str:
        """Return the key of one writing call's marker (its outcome, kept until its deadline)."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}:q:{call_id}"

    def index_key(self, user_id: str) -> str:
        """Return the key of the user's session index."""
        return f"{self.prefix}:{{{escape_user_id(user_id)}}}:i"

    def parse_session_key(self, key: str) -> tuple[str, str] | None:
        """Return ``(user_id, session_id)`` for a session key of this layout, else ``None``."""
        head = f"{self.prefix}:{{"
        if not key.startswith(head):
            return None
        end = key.find(self._session_marker, len(head))
        if end < 0:
            return None
        tag = key[len(head) : end]
        session_id = key[end + len(self._session_marker) :]
        if "{" in tag or "}" in tag or not is_session_id(session_id):
            return None
        return unescape_user_id(tag), session_id

    def schedule_key(self, bucket: int) -> str:
        """Return the key of one expiry-schedule bucket."""
        return f"{self.prefix}:{{x{bucket}}}:due"

    def expiry_log_key(self, bucket: int) -> str:
        """Return the key of one bucket's log of recently reported expiries."""
        return f"{self.prefix}:{{x{bucket}}}:gone"

    @staticmethod
    def bucket(session_key: str) -> int:
        """Return the schedule bucket of a session key: CRC-32 of its UTF-8 bytes, mod 16."""
        return zlib.crc32(session_key.encode()) % SCHEDULE_BUCKETS
