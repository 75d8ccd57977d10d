"""What a new user reads first: install commands that work, code that parses, a license."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

import redis_jwt

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/redis-jwt/redis-jwt-python"
READ_FIRST = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def test_no_page_tells_users_to_install_from_an_index_that_lacks_the_package() -> None:
    # The package is not on PyPI: ``pip install redis-jwt`` finds nothing (or someone else's).
    names_it = re.compile(r"pip install [^#&\n]*\bredis-jwt\b")
    for name in READ_FIRST:
        for block in re.findall(
            r"```(?:bash|sh|shell|console)\n(.*?)```", (ROOT / name).read_text(), re.S
        ):
            for line in block.splitlines():
                if names_it.search(line):
                    assert f"git+{REPOSITORY}" in line, f"{name}: {line}"


def test_getting_started_installs_from_the_repository_with_extras() -> None:
    page = (ROOT / "docs" / "getting-started.md").read_text()
    assert f'pip install "redis-jwt @ git+{REPOSITORY}"' in page
    assert 'pip install -e ".[fastapi]"' in page
    for extra in ("starlette", "fastapi", "litestar", "demo", "docs", "dev"):
        assert f"| `{extra}` |" in page, extra
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"starlette", "fastapi", "litestar", "demo", "docs", "dev"} <= set(extras)


@pytest.mark.parametrize("page", ["getting-started.md", "fastapi.md", "websockets.md"])
def test_websocket_users_are_told_to_install_uvicorn_standard(page: str) -> None:
    assert 'pip install "uvicorn[standard]"' in (ROOT / "docs" / page).read_text()


@pytest.mark.parametrize("page", ["litestar.md", "migrating.md", "getting-started.md", "api.md"])
def test_the_python_examples_of_the_first_hour_pages_parse(page: str) -> None:
    blocks = re.findall(r"```python\n(.*?)\n```", (ROOT / "docs" / page).read_text(), re.S)
    assert blocks
    for block in blocks:
        # Top-level ``await`` is how the pages show calls inside your own coroutine.
        compile(block, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_the_license_ships_and_the_project_links_agree() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 redis-jwt developers" in license_text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    urls = project["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(url.startswith(REPOSITORY) for url in urls.values()), urls


def test_the_changelog_has_an_unreleased_section_and_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert headings[0] == "Unreleased"
    assert redis_jwt.__version__ in headings
    for heading in headings:
        assert f"[{heading}]: {REPOSITORY}/" in changelog, heading


def test_the_docs_site_is_built_where_the_docs_say() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    assert '"--site-dir", "site"' in noxfile
    assert "site/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "site/index.html" in (ROOT / "docs" / "index.md").read_text()
    assert "site/index.html" in (ROOT / "README.md").read_text()


def test_the_api_reference_is_generated_from_the_docstrings() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    for name in ("redis_jwt.RedisJWT", "redis_jwt.Session", "redis_jwt.errors"):
        assert f"::: {name}" in page
    for module in ("starlette", "fastapi", "litestar"):
        assert f"::: redis_jwt.{module}" in page
    assert "mkdocstrings" in (ROOT / "mkdocs.yml").read_text()
