"""Options are declared once: the constructor, ``Options`` and ``Settings`` agree."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from pydantic import SecretStr

from redis_jwt import RedisJWT, Settings
from redis_jwt._options import Options, options_from_settings

SECRET = "an-options-test-secret-of-at-least-32-bytes"
# Settings fields that are no constructor keyword: they make up ``keys``.
SETTINGS_ONLY = {"signing_kid"}
# Constructor keywords no environment variable can carry: a client object.
CONSTRUCTOR_ONLY = {"redis"}


def test_the_constructor_takes_exactly_the_options_with_their_defaults() -> None:
    parameters = inspect.signature(RedisJWT.__init__).parameters
    keywords = {name: p.default for name, p in parameters.items() if name != "self"}
    declared = {f.name: f.default for f in dataclasses.fields(Options)}
    assert keywords == declared


def test_every_setting_feeds_the_option_of_its_name_with_the_same_default() -> None:
    declared = {f.name: f.default for f in dataclasses.fields(Options)}
    fields = Settings.model_fields
    assert set(fields) - SETTINGS_ONLY <= set(declared)
    assert set(declared) - set(fields) == CONSTRUCTOR_ONLY
    for name, field in fields.items():
        if name in SETTINGS_ONLY or name in ("keys", "secret"):
            continue
        default = declared[name]
        # The environment carries durations and the URL as text; the constructor's
        # defaults mean the same.
        if name == "redis_url":
            assert field.default == "redis://127.0.0.1:6379/0"
        else:
            assert field.default == default, name


def test_from_settings_maps_every_field_by_name() -> None:
    settings = Settings(secret=SecretStr(SECRET), ttl="15 minutes", leeway=3, max_sessions=2)
    values = options_from_settings(settings, {"prefix": "app"})
    assert values["secret"] == SECRET
    assert values["ttl"] == "15 minutes"
    assert values["leeway"] == 3
    assert values["max_sessions"] == 2
    assert values["prefix"] == "app"
    assert "signing_kid" not in values


def test_the_former_leeway_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_JWT_LEEWAY_SECONDS", "4")
    assert Settings().leeway == 4
    assert Settings().leeway_seconds == 4
    monkeypatch.delenv("REDIS_JWT_LEEWAY_SECONDS")
    monkeypatch.setenv("REDIS_JWT_LEEWAY", "5")
    assert Settings().leeway == 5
    former: dict[str, Any] = {"leeway_seconds": 6}
    assert Settings(**former).leeway == 6
    assert Settings(leeway=7).leeway == 7


def test_options_are_frozen() -> None:
    options = Options(secret=SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.ttl = 5  # type: ignore[misc]
