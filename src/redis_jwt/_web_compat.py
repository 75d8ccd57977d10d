"""The one place the web adapters reach into a framework's private attributes.

Each reach-in names the versions it was written for and has a test
(tests/test_web_compat.py) that fails when a release moves what it touches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from starlette.websockets import WebSocket

from ._asgi import Message, Receive, Send

__all__ = ["socket_channels"]


class _Channels(Protocol):
    """What :func:`socket_channels` needs of a wrapper: its own ``receive`` and ``send``."""

    async def receive(self) -> Message: ...

    async def send(self, message: Message) -> None: ...


_Wrapper = TypeVar("_Wrapper", bound=_Channels)


def socket_channels(socket: WebSocket, wrap: Callable[[Receive, Send], _Wrapper]) -> _Wrapper:
    """Route a Starlette WebSocket's ASGI ``receive``/``send`` through ``wrap(receive, send)``.

    A FastAPI dependency gets the :class:`~starlette.websockets.WebSocket`, not
    the ASGI callables, so closing the socket when its session ends (what the
    middleware does by wrapping the callables) needs the object's own. Written
    for Starlette 0.40 to 1.10, where ``WebSocket.__init__`` keeps them as
    ``_receive`` and ``_send`` and every ``receive``/``send`` goes through them.
    """
    wrapper = wrap(socket._receive, socket._send)
    socket._receive = wrapper.receive
    socket._send = wrapper.send
    return wrapper
