"""A dependency-free progress line for long CLI work (stderr, ~10 updates/s)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """Shows ``label  done/total  rate`` on one line; a context manager.

    >>> with Progress("producing", total=100) as bar:
    ...     bar.update(10)
    """

    def __init__(self, label: str, total: Optional[int] = None, unit: str = "ev", stream: TextIO = sys.stderr,
                 enabled: Optional[bool] = None, start: Optional[float] = None):
        self.label, self.total, self.unit, self.stream = label, total, unit, stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter() if start is None else start  # a perf_counter() value
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; redraws at most ten times a second."""
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{self.label:<12} [{bar:<30}] {self.done}/{self.total} {rate:,.0f} {self.unit}/s"
        else:
            text = f"\r{self.label:<12} {self.done} {self.unit} {rate:,.0f} {self.unit}/s"
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()


def table(rows: list, headers: list, left: int = 1) -> str:
    """Format rows as an aligned text table: the first ``left`` columns (names) left-aligned,
    the others (figures) right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in enumerate(zip(cells[0], widths))), line]
    for r in cells[1:]:
        out.append("  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)
