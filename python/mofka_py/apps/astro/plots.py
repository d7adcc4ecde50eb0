"""The run's plots: the sky (Mollweide) and the latencies over time with the faults marked."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List

import numpy as np

from .check import Analysis
from .coincidence import MESSENGERS
from .scenario import Scenario

COLOURS = {"gw": "tab:purple", "gamma": "tab:orange", "neutrino": "tab:blue"}
SYMBOLS = {"gw": "GW", "gamma": "γ", "neutrino": "ν"}
LABELS = {"gw": "gravitational wave", "gamma": "gamma-ray burst", "neutrino": "neutrino"}


def _xy(ra: Any, dec: Any) -> tuple:
    """Mollweide axes coordinates (radians; RA increasing to the left, as on the sky)."""
    ra = np.radians(np.remainder(np.asarray(ra, dtype=float) + 180.0, 360.0) - 180.0)
    return -ra, np.radians(np.asarray(dec, dtype=float))


def _circle(ax: Any, ra: float, dec: float, radius: float, colour: str) -> None:
    """A circle of ``radius`` degrees on the sky, drawn on the projection (split where it wraps)."""
    pa = np.radians(np.linspace(0, 360, 73))
    r, d0, a0 = math.radians(radius), math.radians(dec), math.radians(ra)
    d = np.arcsin(np.sin(d0) * np.cos(r) + np.cos(d0) * np.sin(r) * np.cos(pa))
    a = a0 + np.arctan2(np.sin(pa) * np.sin(r) * np.cos(d0), np.cos(r) - np.sin(d0) * np.sin(d))
    x, y = _xy(np.degrees(a), np.degrees(d))
    cuts = np.nonzero(np.abs(np.diff(x)) > math.pi)[0] + 1
    for xs, ys in zip(np.split(x, cuts), np.split(y, cuts)):
        ax.plot(xs, ys, color=colour, linewidth=1.1)


def sky_map(path: Path, sc: Scenario, an: Analysis) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 6.4))
    ax = fig.add_subplot(111, projection="mollweide")
    ax.grid(True, alpha=0.3)
    ax.set_xticks(np.radians(np.arange(-150, 151, 30)))
    ax.set_xticklabels([f"{int(round(-x / 15)) % 24}h" for x in range(-150, 151, 30)], fontsize=8)
    nside = sc.params.nside
    # Injected events' GW maps: their 90% credible pixels.
    for p in sc.alerts:
        a = p.alert
        if p.event is None or a.messenger != "gw" or a.skymap is None:
            continue
        import healpy as hp

        order = np.argsort(a.skymap[1])[::-1]
        keep = order[: int(np.searchsorted(np.cumsum(a.skymap[1][order]), 0.9)) + 1]
        ra, dec = hp.pix2ang(nside, a.skymap[0][keep].astype(np.int64), nest=True, lonlat=True)
        ax.scatter(*_xy(ra, dec), s=1.0, color=COLOURS["gw"], alpha=0.12, linewidths=0, rasterized=True)
    # Background alerts at their most probable position; injected ones' error circles.
    for m in MESSENGERS:
        pts = np.array([p.alert.lobes[np.argmax(p.alert.lobes[:, 3])] for p in sc.alerts
                        if p.event is None and p.alert.messenger == m]).reshape(-1, 4)
        ax.scatter(*_xy(pts[:, 0], pts[:, 1]), s=3 if m == "neutrino" else 10, color=COLOURS[m], alpha=0.4,
                   linewidths=0, label=f"background {LABELS[m]} ({len(pts)})")
        for p in sc.alerts:
            if p.event is not None and m != "gw" and p.alert.messenger == m:
                ra, dec, sigma, _ = p.alert.lobes[0]
                _circle(ax, ra, dec, max(2.146 * sigma, 1.0), COLOURS[m])
    # Where the telescopes were sent; the injected events' true positions; chance coincidences.
    for ra, dec in an.targets:
        ax.scatter(*_xy(ra, dec), s=70, marker="+", color="k", linewidths=1.2, zorder=6)
    for e in sc.events:
        ok = an.injected_found.get(e.id, False)
        ax.scatter(*_xy(e.ra, e.dec), s=150, marker="*", color="gold" if ok else "red", edgecolors="k",
                   linewidths=0.6, zorder=5)
        ax.annotate(f"{e.id} {'+'.join(SYMBOLS[k] for k in e.kind)}",
                    _xy(e.ra, e.dec), fontsize=7, xytext=(6, 5), textcoords="offset points")
    for grp in an.false_groups:
        for aid in grp:
            a = an.alerts.get(aid)
            if a is not None:
                lob = np.asarray(a["lobes"])
                best = lob[np.argmax(lob[:, 3])]
                ax.scatter(*_xy(best[0], best[1]), s=70, marker="x", color="red", zorder=6)
    ax.scatter([], [], s=150, marker="*", color="gold", edgecolors="k", label="injected event (detected)")
    ax.plot([], [], color="grey", label="its gamma / neutrino 90% circle (neutrino: at least 1°)")
    ax.scatter([], [], s=20, color=COLOURS["gw"], alpha=0.4, label="90% region of its GW map")
    ax.scatter([], [], s=70, marker="+", color="k", label="follow-up target sent to telescopes")
    ax.scatter([], [], s=70, marker="x", color="red", label=f"false alarm ({len(an.false_groups)})")
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    ax.set_title(f"{len(sc.alerts)} alerts over {sc.params.sky_hours:g} sky hours, {len(sc.events)} injected "
                 f"events (equatorial{f'; GW maps HEALPix nside {nside}' if sc.params.healpix else ''})",
                 fontsize=10, pad=14)
    fig.subplots_adjust(bottom=0.16, top=0.92, left=0.04, right=0.96)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def latency(path: Path, sc: Scenario, an: Analysis) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax, hx) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    for label, _site, start, end in an.windows:
        ax.axvspan(start - an.t0, end - an.t0, color="red" if "link" in label else "grey", alpha=0.15)
        ax.text(start - an.t0, 1.02, label, transform=ax.get_xaxis_transform(), fontsize=8, va="bottom")
    site_messenger = {"ligo": "gw", "fermi": "gamma", "icecube": "neutrino"}
    for site, m in site_messenger.items():
        xs = [a["t_emit"] - an.t0 for aid, a in an.alerts.items() if a["site"] == site and aid in an.transit]
        ys = [an.transit[aid] for aid, a in an.alerts.items() if a["site"] == site and aid in an.transit]
        ax.scatter(xs, ys, s=4 if m == "neutrino" else 10, color=COLOURS[m], alpha=0.5, linewidths=0,
                   label=f"{site} alert -> cloud")
    det = an.detection
    if det:
        ax.scatter([d.t for d in det], [d.latency for d in det], s=60, marker="D", facecolors="none", edgecolors="k",
                   label="alert -> follow-up at telescope")
    ax.set_yscale("log")
    ax.set_xlabel("alert emitted (s after the first alert)")
    ax.set_ylabel("latency (s)")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ax.grid(True, which="both", alpha=0.2)
    normal = [d.latency for d in det if d.fault is None]
    hit = [d.latency for d in det if d.fault is not None]
    if det:
        lo = max(min(d.latency for d in det) * 0.7, 1e-3)
        hi = max(d.latency for d in det) * 1.4
        bins = np.logspace(math.log10(lo), math.log10(hi), 20)
        hx.hist([normal, hit], bins=bins, stacked=True, color=["tab:green", "tab:red"],
                label=[f"no fault ({len(normal)})", f"during a fault ({len(hit)})"])
        hx.set_xscale("log")
        hx.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        hx.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        hx.legend(fontsize=8)
    hx.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    hx.set_xlabel("detection latency: alert -> follow-up at telescope (s)")
    hx.set_ylabel("follow-up commands")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def make(out: Path, sc: Scenario, an: Analysis) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    return [sky_map(out / "astro-sky.png", sc, an), latency(out / "astro-latency.png", sc, an)]
