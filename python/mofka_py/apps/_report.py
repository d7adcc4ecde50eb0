"""What an application reports: a service-level table (metric, value, target, met) and plots."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from .._progress import table


@dataclass
class Row:
    """One line of a service-level table. ``met`` is None for a figure without a target."""

    metric: str
    value: str
    target: Optional[str] = None
    met: Optional[bool] = None


@dataclass
class Report:
    """An application's outcome: ``ok`` is False when an invariant failed (a task lost, a frame
    analysed twice, an injected coincidence missed...), whatever the timings."""

    app: str
    title: str
    rows: List[Row] = field(default_factory=list)
    plots: List[str] = field(default_factory=list)
    faults: List[str] = field(default_factory=list)   # what was injected, when, and what it cost
    ok: bool = True
    notes: List[str] = field(default_factory=list)

    def add(self, metric: str, value: object, target: Optional[str] = None, met: Optional[bool] = None) -> None:
        self.rows.append(Row(metric, str(value), target, met))

    def require(self, metric: str, value: object, good: bool, target: str) -> None:
        """An invariant: recorded as a row, and the report is not ok if it does not hold."""
        self.rows.append(Row(metric, str(value), target, good))
        self.ok = self.ok and good

    def render(self) -> str:
        lines = [f"== {self.title}"]
        rows = [(r.metric, r.value, r.target or "", "" if r.met is None else ("yes" if r.met else "NO"))
                for r in self.rows]
        lines.append(table(rows, ["metric", "value", "target", "met"]))
        if self.faults:
            lines.append("faults injected:")
            lines.extend(f"  - {f}" for f in self.faults)
        if self.plots:
            lines.append("plots: " + ", ".join(self.plots))
        lines.extend(self.notes)
        lines.append(f"{self.app}: {'OK' if self.ok else 'FAILED'}")
        return "\n".join(lines)


def summary(reports: List[Report]) -> str:
    """One table over several applications: each one's key figures and whether it held."""
    rows = []
    for rep in reports:
        key = [r for r in rep.rows if r.target] or rep.rows
        for i, r in enumerate(key):
            rows.append((rep.app if i == 0 else "", r.metric, r.value, r.target or "",
                         "" if r.met is None else ("yes" if r.met else "NO")))
        rows.append(("", "faults injected", str(len(rep.faults)), "", ""))
        rows.append(("", "invariants", "held" if rep.ok else "VIOLATED", "", "yes" if rep.ok else "NO"))
    return table(rows, ["app", "metric", "value", "target", "met"], left=2)
