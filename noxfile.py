"""Every job of the project: ``nox -s tests lint typecheck docs examples`` (see README.md)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck", "docs", "examples"]

PYTHON = "3.11"
LINTED = ["src", "tests", "examples", "noxfile.py"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against real throwaway Redis servers, with branch coverage."""
    session.install("-e", ".[dev]")
    # coverage wraps the whole process: the redis_jwt pytest plugin (an entry
    # point) imports the package before pytest-cov would start measuring.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style with ruff; never rewrites files."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library, the tests, the examples and this file."""
    session.install("-e", ".[dev]", "nox")
    session.run("mypy", "src", "tests", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on any warning."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.run("mkdocs", "build", "--strict", "--site-dir", f"{session.create_tmp()}/site")


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run every example end to end against a throwaway Redis."""
    session.install("-e", ".[dev]")
    session.run("python", "examples/quickstart.py")
