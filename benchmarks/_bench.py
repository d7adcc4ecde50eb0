"""What the benchmark scripts in this folder share: small statistics, a free port, sizes in words,
the machine a run was on, the results folder, JSON / markdown writing and the plot boilerplate.

The scripts (``python benchmarks/bench_NAME.py``) have this folder first on ``sys.path`` and import
it as ``import _bench``; bench_pool's worker processes find it the same way as they find
bench_pool itself (this folder on ``PYTHONPATH``). Importing it costs only the standard library:
matplotlib is imported when a plot is made, and a missing matplotlib skips the plot with one line
on stderr instead of failing the run.

What each script measures, and the schema of its JSON, stay in the script; this module only does
the same chores the same way for all of them.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
"""The committed results: ``benchmarks/results/NAME.{json,md,png}`` (quoted by the README)."""

KiB, MiB = 1 << 10, 1 << 20

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------- numbers and words

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; a server started next binds it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def human(n: int) -> str:
    """A byte count in the tables' words: ``64 B``, ``1 KiB``, ``16 MiB`` (whole units, rounded down)."""
    for unit, div in (("MiB", MiB), ("KiB", KiB)):
        if n >= div:
            return f"{n // div} {unit}"
    return f"{n} B"


def median(xs: Sequence[float]) -> Optional[float]:
    """The median, or None for no samples."""
    return statistics.median(xs) if xs else None


def pct(xs: Sequence[float], q: float) -> Optional[float]:
    """The ``q`` quantile (0..1) as the nearest-rank sample (no interpolation); None for no samples."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def rounded(rec: Dict[str, Any], digits: int) -> Dict[str, Any]:
    """``rec`` with its float values rounded to ``digits`` places (for a printed JSON line)."""
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in rec.items()}


def print_json(rec: Dict[str, Any], digits: Optional[int] = None) -> None:
    """One JSON line on stdout, flushed at once (floats rounded to ``digits`` places when given)."""
    print(json.dumps(rounded(rec, digits) if digits is not None else rec), flush=True)


# ---------------------------------------------------------------- the machine a run was on

def now() -> str:
    """Local time as the results write it: ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def load_average() -> float:
    """The 1-minute load average (on these 2-core machines, above ~0.5 means another job is running)."""
    return os.getloadavg()[0]


def command_line(argv: Optional[Sequence[str]] = None, script: Optional[str] = None) -> str:
    """How the run was started, as ``python benchmarks/bench_NAME.py ARGS`` (``argv``: the arguments
    after the script, default ``sys.argv[1:]``; ``script``: its file name, default ``sys.argv[0]``'s)."""
    args = list(sys.argv[1:] if argv is None else argv)
    name = Path(script or sys.argv[0]).name
    return " ".join(["python", f"benchmarks/{name}"] + args)


class Machine:
    """Where and when a run happened: host, cores, Python, the date and command at the start, the
    load average at the start and (``finish()``) at the end. The scripts copy the fields they report
    into their own JSON under their own keys."""

    def __init__(self, argv: Optional[Sequence[str]] = None, script: Optional[str] = None):
        self.host = platform.node()
        self.cores = os.cpu_count()
        self.python = platform.python_version()
        self.date = now()
        self.command = command_line(argv, script)
        self.load_start = load_average()
        self.load_end: Optional[float] = None

    def finish(self) -> "Machine":
        """Record the load average at the end of the run."""
        self.load_end = load_average()
        return self


# ---------------------------------------------------------------- results files

def results_dir(path: Optional[PathLike] = None) -> Path:
    """The folder results are written to (default ``benchmarks/results``), created if missing."""
    out = Path(path) if path is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: PathLike, obj: Any, indent: Optional[int] = 1) -> Path:
    """One JSON document (``indent=1``, as the committed results are written)."""
    path = Path(path)
    path.write_text(json.dumps(obj, indent=indent))
    return path


def write_jsonl(path: PathLike, records: Iterable[Dict[str, Any]]) -> Path:
    """JSON lines: one record per line, newline-terminated."""
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_text(path: PathLike, text: str) -> Path:
    """A markdown table or note, written as given."""
    path = Path(path)
    path.write_text(text)
    return path


def write_markdown(path: PathLike, lines: Sequence[str], echo: bool = True) -> str:
    """Markdown lines joined and written newline-terminated; with ``echo`` printed on stdout too.
    Returns the text (without the final newline)."""
    text = "\n".join(lines)
    write_text(path, text + "\n")
    if echo:
        print(text)
    return text


# ---------------------------------------------------------------- plots

MISSING_MATPLOTLIB = "(matplotlib not installed: no plot; pip install matplotlib)"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or None (after saying so on stderr)
    when matplotlib is not installed: the numbers are written either way."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(MISSING_MATPLOTLIB, file=sys.stderr)
        return None
    return plt


def savefig(fig: Any, path: PathLike, dpi: int = 110) -> Path:
    """Lay out, save and close a figure made with ``pyplot()``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(Path(path), dpi=dpi)
    plt.close(fig)
    return Path(path)


__all__: List[str] = ["HERE", "RESULTS", "KiB", "MiB", "free_port", "human", "median", "pct", "rounded",
                      "print_json", "now", "load_average", "command_line", "Machine", "results_dir",
                      "write_json", "write_jsonl", "write_text", "write_markdown",
                      "MISSING_MATPLOTLIB", "pyplot", "savefig"]
