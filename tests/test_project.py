"""The project's own promises: the public API surface and the CI contract."""

from __future__ import annotations

import re
from pathlib import Path

import redis_jwt
from redis_jwt import errors

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete() -> None:
    assert redis_jwt.__all__ == sorted(redis_jwt.__all__)
    for name in redis_jwt.__all__:
        assert hasattr(redis_jwt, name), name
    for name in ("RedisJWT", "Settings", "Session", "SessionInfo", "Event", "errors"):
        assert name in redis_jwt.__all__


def test_every_error_has_a_docstring_and_the_documented_place() -> None:
    assert issubclass(errors.TokenExpired, errors.InvalidToken)
    assert issubclass(errors.SessionNotFound, errors.AuthenticationError)
    assert issubclass(errors.StoreTimeout, errors.StoreError)
    assert errors.AuthenticationError.status_code == 401
    assert errors.StoreError.status_code == 503
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RedisJWTError)
        assert cls.__doc__
        assert cls.__doc__.strip()


def test_the_core_imports_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, redis_jwt; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'starlette', 'fastapi'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert len(blocks) >= 2
    test_command = blocks[1].strip()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci


def test_the_lua_scripts_ship_in_the_package() -> None:
    scripts = Path(redis_jwt.__file__).parent / "scripts"
    assert {p.stem for p in scripts.glob("*.lua")} >= {
        "sign",
        "touch",
        "destroy",
        "destroy_all",
        "list",
    }


def test_the_pytest_plugin_fixtures_carry_the_library_name() -> None:
    # The plugin loads wherever the library is installed: generic names such as
    # ``redis_url`` would shadow other plugins' fixtures and users' own.
    from redis_jwt.testing import pytest_plugin

    names = [name for name in dir(pytest_plugin) if name.startswith("redis")]
    assert sorted(pytest_plugin.__all__) == sorted(names)
    assert names
    assert all(name.startswith("redis_jwt_") for name in names), names
