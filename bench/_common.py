"""What the benchmark scripts share: statistics, versions, machine info, tables, loops."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "LoopName",
    "Stats",
    "event_loop_factory",
    "format_table",
    "human_rate",
    "machine_info",
    "package_versions",
    "resolve_loop",
]

LoopName = Literal["asyncio", "uvloop"]

# Distribution names whose versions the report prints ("-" when not installed).
_PACKAGES = (
    "redis-jwt",
    "redis",
    "hiredis",
    "PyJWT",
    "cryptography",
    "pydantic",
    "starlette",
    "fastapi",
    "fastapi-users",
    "starsessions",
    "uvicorn",
    "uvloop",
    "httpx",
)


@dataclass(frozen=True, slots=True)
class Stats:
    """Rates measured in several rounds of one case.

    The median is the headline number: with a handful of rounds it is not
    moved by one round that a background task disturbed. ``low``/``high`` are
    the slowest and fastest rounds; ``q1``/``q3`` the quartiles (inclusive
    method: with five rounds, the second and fourth values).
    """

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median round."""
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        """The slowest round."""
        return min(self.samples)

    @property
    def high(self) -> float:
        """The fastest round."""
        return max(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """(Q1, Q3) of the rounds; both the median when there is one round."""
        if len(self.samples) < 2:
            return (self.median, self.median)
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q1, q3)

    @property
    def iqr_percent(self) -> float:
        """The interquartile range as a percentage of the median."""
        q1, q3 = self.quartiles
        return 100.0 * (q3 - q1) / self.median if self.median else 0.0

    def as_dict(self) -> dict[str, float | list[float]]:
        """The machine-readable form used by ``--json``."""
        q1, q3 = self.quartiles
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "q1": q1,
            "q3": q3,
            "rounds": list(self.samples),
        }


def human_rate(value: float) -> str:
    """Format a rate compactly: ``950``, ``12.3k``, ``1.20M``."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 1000:
        return f"{value / 1000:.2f}k"
    return f"{value:.0f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a Markdown table (also readable as plain text), numbers right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    # The first column is a label; the others hold numbers or short verdicts.
    aligns = ["<"] + [">"] * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        parts = [f"{cell:{a}{w}}" for cell, a, w in zip(cells, aligns, widths, strict=True)]
        return "| " + " | ".join(parts) + " |"

    # A separator cell spans the cell width plus its two padding spaces.
    rule = "|".join(
        ("-" * (w + 1) + ":") if a == ">" else "-" * (w + 2)
        for a, w in zip(aligns, widths, strict=True)
    )
    return "\n".join([line(headers), f"|{rule}|", *map(line, rows)])


def machine_info() -> dict[str, str | int | None]:
    """CPU model, core counts, OS and Python build: what a reader needs to compare runs."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for text in cpuinfo.read_text(errors="replace").splitlines():
            if text.startswith("model name"):
                model = text.partition(":")[2].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that take part (``-`` for absent ones)."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


def resolve_loop(requested: str) -> LoopName:
    """Map ``auto`` to uvloop when it is installed, else asyncio; check ``uvloop``."""
    if requested == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if requested == "uvloop":
            raise SystemExit("--loop uvloop: uvloop is not installed") from None
        return "asyncio"
    return "uvloop"


def event_loop_factory(loop: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return the factory that ``asyncio.Runner`` should use for ``loop``."""
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
