"""Every job of the project: ``nox -s tests lint typecheck docs examples`` (see README.md)."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import nox

# uv creates and fills the session environments in seconds; plain venv + pip otherwise.
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["tests", "lint", "typecheck", "docs", "examples"]

# The interpreter running nox (any Python 3.11+), so no particular version must be installed.
PYTHON = None
LINTED = ["src", "tests", "examples", "bench", "noxfile.py"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against real throwaway Redis servers, with branch coverage."""
    session.install("-e", ".[dev]")
    # coverage wraps the whole process: the redis_jwt pytest plugin (an entry
    # point) imports the package before pytest-cov would start measuring.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


# The dependencies whose lowest declared versions `nox -s lowest` runs (docs/versions.md).
LOWEST = ("redis", "pyjwt", "pydantic", "pydantic-settings", "starlette", "fastapi")
_PIN_INSTALLED = """
import sys
from importlib.metadata import version
for name in sys.argv[1:]:
    print(f"{name}=={version(name)}")
"""


@nox.session(python=PYTHON, venv_backend="uv")
def lowest(session: nox.Session) -> None:
    """Run the test suite on the lowest declared versions of the runtime dependencies.

    uv resolves the library with its extras at the lowest versions that pyproject.toml
    allows (``--resolution=lowest-direct``); those versions are then pinned while the
    test tools install at their newest (docs/versions.md).
    """
    session.install("--resolution=lowest-direct", "-e", ".[fastapi]")
    pins = session.run("python", "-c", _PIN_INSTALLED, *LOWEST, silent=True)
    constraints = Path(session.create_tmp()) / "lowest-constraints.txt"
    constraints.write_text(str(pins), encoding="utf-8")
    session.install("-c", str(constraints), "-e", ".[dev]")
    ran = session.run("python", "-c", _PIN_INSTALLED, *LOWEST, silent=True)
    session.log(f"versions under test: {', '.join(str(ran).split())}")
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


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
    """Build the documentation site into site/ (open site/index.html), failing on any warning."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
    session.log(f"documentation built: open {Path('site/index.html').resolve()}")


#: What the wheel must carry besides the modules: the license notice, the Lua
#: scripts, the demo's static files and the typing marker.
PACKAGE = Path("src/redis_jwt")


def _wheel_needs() -> set[str]:
    files = {"redis_jwt/py.typed"}
    for pattern in ("scripts/*.lua", "_demo/static/*"):
        files |= {f"redis_jwt/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.glob(pattern)}
    return files


def _check_dist(session: nox.Session, wheel: Path, sdist: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    licenses = {n for n in names if n.endswith(".dist-info/licenses/LICENSE")}
    missing = sorted(_wheel_needs() - names)
    if not licenses:
        missing.append("*.dist-info/licenses/LICENSE")
    if missing:
        session.error(f"{wheel.name} lacks {', '.join(missing)}")
    with tarfile.open(sdist) as archive:
        sdist_names = {n.split("/", 1)[-1] for n in archive.getnames()}
    lacking = sorted({"LICENSE", "CHANGELOG.md", "README.md"} - sdist_names)
    if lacking:
        session.error(f"{sdist.name} lacks {', '.join(lacking)}")
    shown = sorted(licenses | _wheel_needs())
    session.log(f"{wheel.name} carries: " + ", ".join(shown))


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/, check them with twine and check what they carry."""
    session.install("build", "twine")
    shutil.rmtree("dist", ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", "dist")
    wheels, sdists = sorted(Path("dist").glob("*.whl")), sorted(Path("dist").glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in dist/, found {wheels + sdists}")
    session.run("twine", "check", "--strict", str(wheels[0]), str(sdists[0]))
    _check_dist(session, wheels[0], sdists[0])


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run every example end to end against a throwaway Redis."""
    session.install("-e", ".[dev]")
    session.run("python", "examples/quickstart.py")
    # Each web example drives itself in-process and exits non-zero on a failure.
    session.run("python", "examples/fastapi_app.py", "--check")
    session.run("python", "examples/starlette_app.py", "--check")
    session.run("python", "examples/litestar_app.py", "--check")
    session.run("python", "examples/worker.py", "--check")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark against fastapi-users and starsessions; minutes long (docs/benchmarks.md).

    ``nox -s bench -- --quick`` for a smoke run, ``-- --json results.json`` to keep the numbers.
    """
    # fastapi-users' redis extra pins redis<8: this venv runs redis-py 7.x (printed).
    session.install(
        "-e",
        # otel: the verify line with the OpenTelemetry API installed and no SDK;
        # litestar: the HTTP lines of the Litestar plugin and of a bare Litestar app.
        ".[starlette,otel,litestar]",
        "fastapi-users[redis]==15.*",
        "starsessions[redis]",
        "uvicorn",
        "httptools",
        "uvloop",
        "httpx",
    )
    session.run("python", "bench/run.py", *session.posargs)
    if Path("bench/expiry_lag.py").is_file():
        session.run("python", "bench/expiry_lag.py")


@nox.session(python=PYTHON)
def interop(session: nox.Session) -> None:
    """Share sessions with the real Node package redis-jwt 1.4.0 (needs node and npm).

    Installs the pinned package into tests/interop/node_modules (git-ignored), then
    signs and verifies in both directions on a throwaway Redis.
    """
    session.install("-e", ".[dev]")
    with session.chdir("tests/interop"):
        session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    session.run(
        "pytest",
        "-m",
        "interop",
        "tests/test_interop.py",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Hypothesis fuzzing of verify at length: 50 000 examples per property by default.

    ``nox -s fuzz -- 200000`` for more; the default test run does 2 000.
    """
    session.install("-e", ".[dev]")
    examples = session.posargs[0] if session.posargs else "50000"
    session.run(
        "pytest",
        "tests/test_fuzz.py",
        "-q",
        "--timeout=0",
        "-p",
        "no:cacheprovider",
        env={"REDIS_JWT_FUZZ_EXAMPLES": examples},
    )


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """The demo page in headless Chromium, driven by Selenium (tests/e2e).

    Needs Debian's ``chromium`` and ``chromium-driver``; as root they are installed
    here when missing (.ci/run does the same). Without them the session fails: a
    skipped browser test is not a pass.
    """
    if not _have_browser() and os.geteuid() == 0 and shutil.which("apt-get"):
        # A failed install is reported by the check below, with what is missing.
        anything = list(range(256))
        session.run("apt-get", "update", "-q", external=True, success_codes=anything)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
            external=True,
            success_codes=anything,
        )
    if not _have_browser():
        session.error(
            "e2e needs chromium and chromedriver: missing, and they could not be "
            "installed (as root: apt-get install -y chromium chromium-driver)"
        )
    session.install("-e", ".[dev]")
    session.run("pytest", "tests/e2e", "-m", "e2e", "-p", "no:cacheprovider", *session.posargs)


def _have_browser() -> bool:
    """Whether Chromium and its driver are on this machine (tests/e2e looks the same way)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = Path("/usr/bin/chromedriver").exists() or shutil.which("chromedriver")
    return bool(chromium and driver)
