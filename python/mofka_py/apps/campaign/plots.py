"""The campaign's plots (PNG, matplotlib's Agg backend): best-so-far against the number of
simulations for the campaign and random search, and a timeline of task completions with the
faults and the retrains marked."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

COLORS = {"campaign": "tab:blue", "random": "tab:orange"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def best_so_far(path: Path, arms: Dict[str, List[Optional[float]]], label: str, n_common: int) -> str:
    """``arms``: per arm, each outcome's value in arrival order (None for a failed simulation)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm, values in arms.items():
        xs, best, cur = [], [], None
        for k, v in enumerate(values, 1):
            if v is not None and (cur is None or v > cur):
                cur = v
            if cur is not None:
                xs.append(k)
                best.append(cur)
        ax.step(xs, best, where="post", color=COLORS.get(arm), lw=2, label=f"{arm}: best so far")
        pts = [(k, v) for k, v in enumerate(values, 1) if v is not None]
        if pts:
            ax.scatter(*zip(*pts), s=6, alpha=0.35, color=COLORS.get(arm))
    if n_common:
        ax.axvline(n_common, color="0.5", ls=":", lw=1)
    ax.set_xlabel("simulations (per arm)")
    ax.set_ylabel(label)
    ax.set_title("surrogate-guided campaign vs random search, same budget")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def timeline(path: Path, completions: Dict[str, List[Tuple[float, bool]]], faults: List[Tuple[float, str]],
             outages: List[Tuple[float, float]], retrains: List[float], downs: List[Tuple[float, str]]) -> str:
    """``completions``: per arm, (seconds, ok) of each outcome; ``faults``: (seconds, label);
    ``outages``: (start, end) of the service's downtime; ``retrains``: when each model was ready;
    ``downs``: (seconds, node) of the health monitor's node_down events."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    top = 0
    for arm, pts in completions.items():
        ts = sorted(t for t, _ in pts)
        ax.step(ts, range(1, len(ts) + 1), where="post", color=COLORS.get(arm), lw=1.8, label=f"{arm} outcomes")
        bad = [(t, k) for k, (t, ok) in enumerate(sorted(pts), 1) if not ok]
        if bad:
            ax.scatter(*zip(*bad), marker="x", color="k", s=18, zorder=3)
        top = max(top, len(ts))
    for a, b in outages:
        ax.axvspan(a, b, color="tab:red", alpha=0.15)
    labels: List[Tuple[float, str]] = []   # faults less than 2 s apart share one label
    for t, label in faults:
        ax.axvline(t, color="tab:red" if "kill" in label else "tab:green", ls="--", lw=1)
        if labels and t - labels[-1][0] < 2.0:
            labels[-1] = (labels[-1][0], f"{labels[-1][1]}, {label}")
        else:
            labels.append((t, label))
    for t, label in labels:
        ax.text(t, top * 1.02, label, rotation=90, va="bottom", ha="right", fontsize=7)
    if downs:
        ax.plot([t for t, _ in downs], [top * 0.97] * len(downs), "v", color="tab:red", ms=7, label="node_down seen")
    if retrains:
        ax.plot(retrains, [0] * len(retrains), "|", color="tab:purple", ms=10, label="surrogate retrained")
    ax.set_xlabel("seconds since the campaign started")
    ax.set_ylabel("simulations completed")
    ax.set_ylim(-top * 0.03, top * 1.35 + 1)
    ax.set_title("task completions (failed: x), faults (dashed) and service downtime (shaded)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
