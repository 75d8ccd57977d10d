from __future__ import annotations

from datetime import timedelta

import pytest

from redis_jwt._duration import parse_duration
from redis_jwt.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("50 seconds", 50),
        ("10 minutes", 600),
        ("5 hours", 18000),
        ("3 days", 259200),
        ("1 year", 31557600),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("2 weeks", 1209600),
        ("15 Minutes", 900),
        ("90s", 90),
        ("1.5 minutes", 90),
        (3600, 3600),
        (timedelta(hours=1), 3600),
    ],
)
def test_durations_the_seed_documents_are_understood(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "foo",
        "",
        "3600",  # the seed read a bare number as milliseconds: ambiguous, refused
        "500ms",
        "1.5s",
        "-5 minutes",
        "0 seconds",
        "5 fortnights",
        "1" * 200 + "s",
        0,
        -1,
        True,
        1.5,
        None,
        {},
        timedelta(milliseconds=1500),
        timedelta(0),
    ],
)
def test_anything_else_is_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        parse_duration(value)
