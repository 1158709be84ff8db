"""Figures and tables of the benchmarks (via ``_common``): percentiles, medians, py-spy profiles.

:func:`median` and :func:`nearest_rank` summarise timings, :func:`format_table`
lays out a plain-text table, and :class:`Profile` reads a py-spy ``raw``
profile into samples by package and by frame.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


class Profile:
    """A py-spy ``raw`` profile (collapsed stacks, one ``frame;frame;... count`` per line).

    Attributes:
        samples: total samples.
        self_by_package: samples whose innermost Python frame is in each top-level
            package (``litestar``, ``aiogram``, ``asyncio``...); time in C code is
            counted for the Python frame that called it.
        self_by_frame: samples by innermost Python frame.
    """

    def __init__(self, text: str):
        self.samples = 0
        self.self_by_package: dict[str, int] = {}
        self.self_by_frame: dict[str, int] = {}
        for line in text.splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            self.samples += count
            package = _package_of(frames[-1])
            self.self_by_package[package] = self.self_by_package.get(package, 0) + count
            self.self_by_frame[frames[-1]] = self.self_by_frame.get(frames[-1], 0) + count

    def share(self, samples: int) -> float:
        """``samples`` as a percentage of all samples."""
        return 100.0 * samples / self.samples if self.samples else 0.0


def _package_of(frame: str) -> str:
    """``"handle (aiogram/webhook/aiohttp_server.py)"`` -> ``"aiogram"``."""
    where = frame[frame.rfind("(") + 1 : frame.rfind(")")]
    head = where.replace("\\", "/").split("/", 1)[0]
    return head.removesuffix(".py") or frame


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (the mean of the middle two for an even count)."""
    return statistics.median(list(values))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Render rows as a plain-text table: the first column left-aligned, the others right."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return "-" if value is None else str(value)


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest-rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
