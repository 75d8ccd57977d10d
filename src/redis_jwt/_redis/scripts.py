"""The one registry of Lua scripts and the one ``NOSCRIPT`` fallback.

Every ``*.lua`` file shipped in ``redis_jwt/scripts`` is read once at import,
called by SHA (``EVALSHA``) and loaded on every primary when the store opens.
After a restart or a failover the server's script cache is empty: the
commands that got ``NOSCRIPT`` are sent again as ``EVAL`` (which also caches
the script), in one more round trip, whatever sent them (the auto-pipeline,
a batch, a direct call).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, NamedTuple

from redis import exceptions as rex

__all__ = ["SCRIPTS", "Command", "Script", "evalsha", "with_fallback"]

#: One command: its words (``("PTTL", key)``, ``("EVALSHA", sha, 2, ...)``).
Command = tuple[str | int | bytes, ...]


class Script(NamedTuple):
    """One Lua file of the package."""

    name: str
    source: str
    sha: str


def _read_all() -> dict[str, Script]:
    folder = resources.files("redis_jwt") / "scripts"
    scripts: dict[str, Script] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".lua"):
            source = entry.read_text("utf-8")
            sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            scripts[entry.name[:-4]] = Script(entry.name[:-4], source, sha)
    return scripts


#: Every script of the package, by name (the file name without ``.lua``).
SCRIPTS = _read_all()
_BY_SHA = {script.sha: script for script in SCRIPTS.values()}


def evalsha(name: str, keys: Sequence[str], args: Sequence[str | int]) -> Command:
    """The ``EVALSHA`` command that runs script ``name``."""
    return ("EVALSHA", SCRIPTS[name].sha, len(keys), *keys, *args)


def _as_eval(command: Command) -> Command:
    return ("EVAL", _BY_SHA[str(command[1])].source, *command[2:])


def _missing(command: Command, reply: Any) -> bool:
    return (
        isinstance(reply, rex.NoScriptError)
        and command[0] == "EVALSHA"
        and str(command[1]) in _BY_SHA
    )


async def with_fallback(
    send: Callable[[Sequence[Command]], Awaitable[list[Any]]], commands: Sequence[Command]
) -> list[Any]:
    """Send ``commands`` with ``send`` (error replies come back as values); resend as
    ``EVAL`` those of our scripts that got ``NOSCRIPT``."""
    replies = await send(commands)
    again = [i for i, reply in enumerate(replies) if _missing(commands[i], reply)]
    if again:
        retried = await send([_as_eval(commands[i]) for i in again])
        for i, reply in zip(again, retried, strict=True):
            replies[i] = reply
    return replies
