"""The ``with`` protocol shared by every process set of the harness."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Managed"]


class Managed:
    """Starts on entering a ``with`` block and stops on leaving it."""

    def start(self) -> Self:
        """Start the processes and wait until they are ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the processes by PID; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
