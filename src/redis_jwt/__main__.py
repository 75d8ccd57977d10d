"""The ``redis-jwt`` command (also ``python -m redis_jwt``); see :mod:`redis_jwt._cli`."""

from __future__ import annotations

import sys

from ._cli import main
from ._cli._common import redacted as _redacted  # the name older tests and callers import

__all__ = ["_redacted", "main"]

if __name__ == "__main__":
    sys.exit(main())
