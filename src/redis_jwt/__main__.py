"""The ``redis-jwt`` command (also ``python -m redis_jwt``); see :mod:`redis_jwt._cli`."""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
