"""Parsing of lifetimes: ``'15 minutes'``, ``'2h'``, ``3600``, ``timedelta(days=1)``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from .errors import ConfigurationError

__all__ = ["Duration", "parse_duration"]

#: What users may pass wherever a lifetime is expected.
Duration = str | int | timedelta

# The units the Node seed's ``ms`` package understands, minus milliseconds:
# Redis expiries and JWT ``exp`` are whole seconds here, so a sub-second unit
# would only invite surprises.
_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("s", "sec", "secs", "second", "seconds"), 1),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600),
    (("d", "day", "days"), 86400),
    (("w", "week", "weeks"), 7 * 86400),
    # 365.25 days, as the seed's ``ms`` package counts a year.
    (("y", "yr", "yrs", "year", "years"), 31_557_600),
):
    for _name in _names:
        _UNITS[_name] = _seconds

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_EXAMPLES = "'50 seconds', '15 minutes', '2h', '3 days', '1 year', 3600 or timedelta(hours=1)"


def parse_duration(value: object, *, name: str = "ttl") -> int:
    """Return ``value`` as a whole, positive number of seconds.

    Args:
        value: a string with a unit (``'15 minutes'``, ``'15m'``), an int of
            seconds or a :class:`~datetime.timedelta`.
        name: the option's name, used in the error message.

    Raises:
        ConfigurationError: for anything else, for zero or negative lifetimes
            and for fractions of a second.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a duration such as {_EXAMPLES}, not a bool")
    if isinstance(value, int):
        seconds: float = value
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _PATTERN.match(value) if len(value) <= 100 else None
        unit = match and _UNITS.get(match.group(2).lower())
        if match is None or unit is None:
            raise ConfigurationError(
                f"{name}={value!r} is not a duration; use a number with a unit, e.g. {_EXAMPLES}"
            )
        seconds = float(match.group(1)) * unit
    else:
        raise ConfigurationError(
            f"{name} must be a duration such as {_EXAMPLES}, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise ConfigurationError(f"{name}={value!r} must be a whole number of seconds")
    if seconds < 1:
        raise ConfigurationError(f"{name}={value!r} must be at least 1 second")
    return int(seconds)
