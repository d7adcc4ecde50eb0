"""The coincidence test between alerts of two messengers: a time window, then a joint false-alarm rate.

For alerts ``a`` and ``b`` of different messengers whose times fall within the pair's window, the
joint false-alarm rate is ``FAR_a * FAR_b * width / I`` (``width``: the window's length in seconds,
``I``: the sky-overlap integral of :mod:`.sky`): the rate at which chance pairs at least as
significant in both streams would meet in time, divided by how much more they overlap on the sky than
unrelated maps do. This is the statistic of RAVEN (the LVK's GW-GRB search) extended to every pair.
A pair is a coincidence when it is below ``far_max``. Windows (seconds, second minus first):

- GW -> gamma-ray burst: [-1, +5] (a merger's burst arrives within seconds);
- GW -> neutrino and gamma-ray -> neutrino: [-500, +500] (the standard neutrino search window).

The :class:`Finder` compares each new alert with every earlier one of the other messengers, so the
pairs it finds do not depend on the order alerts arrive in: a detector reading a stream (with an
outage reordering it) finds exactly the pairs a batch analysis of the same alerts finds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import sky

MESSENGERS = ("gw", "gamma", "neutrino")
WINDOWS: Dict[Tuple[str, str], Tuple[float, float]] = {
    ("gw", "gamma"): (-1.0, 5.0),
    ("gw", "neutrino"): (-500.0, 500.0),
    ("gamma", "neutrino"): (-500.0, 500.0),
}
DAY = 86400.0
FAR_MAX_PER_DAY = 1.0 / 30     # one chance coincidence per 30 days of sky time


@dataclass
class Alert:
    """What the test needs of an alert: its id, messenger, time (GPS s), FAR (Hz) and localisation."""

    id: str
    messenger: str
    gps: float
    far: float
    lobes: np.ndarray
    skymap: Optional[sky.SparseMap] = None


@dataclass
class Pair:
    first: Alert
    second: Alert
    overlap: float
    far: float      # joint false-alarm rate, Hz

    @property
    def key(self) -> Tuple[str, str]:
        return tuple(sorted((self.first.id, self.second.id)))  # type: ignore[return-value]


def window(first: str, second: str) -> Tuple[float, float, bool]:
    """(low, high, swapped): the window of ``t(second) - t(first)``, after putting the pair in the order
    of :data:`MESSENGERS` (swapped tells whether that reversed it)."""
    if MESSENGERS.index(first) > MESSENGERS.index(second):
        lo, hi, _ = window(second, first)
        return lo, hi, True
    lo, hi = WINDOWS[(first, second)]
    return lo, hi, False


def overlap(a: Alert, b: Alert, nside: int = sky.NSIDE) -> float:
    if a.skymap is not None and b.skymap is not None:
        return sky.overlap_maps(a.skymap, b.skymap, nside)
    return sky.overlap_lobes(a.lobes, b.lobes)


class Finder:
    """Keeps every alert seen and returns, for each new one, its coincidences with the earlier ones."""

    def __init__(self, far_max: float = FAR_MAX_PER_DAY / DAY, nside: int = sky.NSIDE):
        self.far_max, self.nside = far_max, nside
        self.alerts: Dict[str, List[Alert]] = {m: [] for m in MESSENGERS}
        self._gps: Dict[str, np.ndarray] = {m: np.empty(0) for m in MESSENGERS}
        self.tested = 0     # pairs within a time window (sky overlap computed)

    def add(self, a: Alert) -> List[Pair]:
        out: List[Pair] = []
        for m in MESSENGERS:
            if m == a.messenger or not self.alerts[m]:
                continue
            lo, hi, swapped = window(a.messenger, m)
            dt = self._gps[m] - a.gps                    # t(other) - t(new)
            if swapped:
                lo, hi = -hi, -lo
            width = hi - lo
            for i in np.nonzero((dt >= lo) & (dt <= hi))[0]:
                b = self.alerts[m][int(i)]
                self.tested += 1
                ov = overlap(a, b, self.nside)
                if ov <= 0:
                    continue
                far = a.far * b.far * width / ov
                if far < self.far_max:
                    out.append(Pair(b, a, ov, far))
        self.alerts[a.messenger].append(a)
        self._gps[a.messenger] = np.append(self._gps[a.messenger], a.gps)
        return out


def batch(alerts: List[Alert], far_max: float, nside: int = sky.NSIDE) -> Dict[Tuple[str, str], Pair]:
    """Every coincident pair among ``alerts`` (the offline analysis the streaming detector must match)."""
    finder = Finder(far_max, nside)
    found: Dict[Tuple[str, str], Pair] = {}
    for a in alerts:
        for p in finder.add(a):
            found[p.key] = p
    return found
