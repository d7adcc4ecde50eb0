"""The sky the three observatories see during a run: background alerts and injected multi-messenger events.

Sky time runs ``speedup`` times faster than the wall clock (default 3600: one sky hour per second),
so a run of tens of seconds covers a day of alerts at their real relative rates. Background rates
per sky day, in the spirit of the sub-threshold streams coincidence searches use:

- gravitational waves (LIGO/Virgo/KAGRA low-significance candidates): 6
- gamma-ray bursts (Fermi-GBM-like sub-threshold triggers): 40
- neutrinos (IceCube-like track events): 600

A background alert's false-alarm rate (FAR) is uniform between 0 and its stream's rate (that is what a
calibrated FAR means for noise); an injected (astrophysical) alert is louder. Injected events have two
or three messengers at one sky position: a GW candidate, a gamma-ray burst 0.5-2 s after it, a
neutrino within ±100 s. Every injected event is above the detection threshold by construction (its
localisations are drawn again until one pair passes), so the run tests the pipeline, not the
search's sensitivity. Real multi-messenger events are years apart; here several happen a day.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import sky
from .coincidence import DAY, MESSENGERS, Alert, Finder

# site -> (messenger, instrument, background alerts per sky day, alert id prefix)
OBSERVATORIES: Dict[str, Tuple[str, str, float, str]] = {
    "ligo": ("gw", "LIGO/Virgo/KAGRA", 6.0, "S"),
    "fermi": ("gamma", "Fermi GBM", 40.0, "GRB"),
    "icecube": ("neutrino", "IceCube", 600.0, "IC"),
}
SITE_OF = {v[0]: k for k, v in OBSERVATORIES.items()}
# Injected (astrophysical) alerts: log-uniform FAR ranges in Hz.
LOUD_FAR = {"gw": (1e-9, 1e-7), "gamma": (1e-6, 1e-4), "neutrino": (1e-5, 1e-3)}
EVENT_KINDS = (("gw", "gamma"), ("gw", "neutrino"), ("gamma", "neutrino"), ("gw", "gamma", "neutrino"))
GBM_SYS_DEG = 3.7    # Fermi GBM's systematic localisation error


@dataclass
class Params:
    sky_hours: float = 48.0
    speedup: float = 3600.0
    injections: int = 12
    noise_scale: float = 1.0
    nside: int = sky.NSIDE
    seed: int = 14
    far_max: float = 1.0 / 30 / DAY
    healpix: bool = True
    # wall-time windows (s from the start of emission) that should each hold an injected event
    pins: List[Tuple[str, float]] = field(default_factory=list)   # (messenger the event must have, wall time)

    @property
    def duration(self) -> float:
        """Seconds of wall time the emission lasts."""
        return self.sky_hours * 3600.0 / self.speedup


@dataclass
class PlannedAlert:
    alert: Alert
    site: str
    wall: float                 # seconds after the start of emission
    event: Optional[str]        # injected event id, None for background
    meta: Dict[str, Any]


@dataclass
class Event:
    id: str
    kind: Tuple[str, ...]
    ra: float
    dec: float
    gps: float
    wall: float
    alerts: List[str]


@dataclass
class Scenario:
    params: Params
    gps0: float
    t0_iso: str
    alerts: List[PlannedAlert]
    events: List[Event]

    def by_id(self) -> Dict[str, PlannedAlert]:
        return {p.alert.id: p for p in self.alerts}

    def save_site(self, site: str, path: Path) -> int:
        """Write one observatory's alerts (metadata + map bytes, in emission order) for its process."""
        mine = [p for p in self.alerts if p.site == site]
        metas = [json.dumps(dict(p.meta, wall=p.wall)).encode() for p in mine]
        maps = [sky.encode(p.alert.skymap) if p.alert.skymap is not None else b"" for p in mine]
        np.savez(path, meta=np.array(metas, dtype=object).astype(bytes) if metas else np.array([], dtype=bytes),
                 maps=np.frombuffer(b"".join(maps), dtype=np.uint8),
                 ends=np.cumsum([len(m) for m in maps]).astype(np.int64))
        return len(mine)


def load_site(path: Path) -> List[Tuple[Dict[str, Any], bytes]]:
    """What :meth:`Scenario.save_site` wrote: (metadata, map bytes) per alert."""
    with np.load(path, allow_pickle=False) as z:
        metas, maps, ends = z["meta"], z["maps"].tobytes(), z["ends"]
    starts = np.concatenate([[0], ends[:-1]]).astype(int)
    return [(json.loads(bytes(m)), maps[a:b]) for m, a, b in zip(metas, starts, ends)]


def _random_sky(rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def _gw_lobes(rng: np.random.Generator, ra: float, dec: float) -> np.ndarray:
    """A broad multi-modal GW skymap around a source at (ra, dec): 2-5 lobes along the ring of constant
    time delay (a small circle around a random detector-baseline axis) through the source, the source
    near one of them."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    src = SkyCoord(ra=ra * u.deg, dec=dec * u.deg)
    axis_ra, axis_dec = _random_sky(rng, 1)
    axis = SkyCoord(ra=axis_ra[0] * u.deg, dec=axis_dec[0] * u.deg)
    opening = axis.separation(src)
    pa_src = axis.position_angle(src)
    n = int(rng.integers(2, 6))
    sigmas = rng.uniform(3.0, 8.0, n)
    weights = rng.dirichlet(np.full(n, 2.0))
    home = int(rng.integers(n))                 # the lobe the source sits in
    # Lobes every 15-35 degrees of arc along the ring, the source's lobe among them.
    steps = np.cumsum(rng.uniform(15.0, 35.0, n)) / max(math.sin(opening.radian), 0.2)
    pas = pa_src.deg + steps - steps[home] + rng.normal(0, 3.0)
    centres = axis.directional_offset_by(pas * u.deg, opening)
    centres = SkyCoord(ra=centres.ra, dec=centres.dec)
    # The source is within about one lobe width of its lobe's centre.
    off = src.directional_offset_by(rng.uniform(0, 360) * u.deg, rng.rayleigh(0.6 * sigmas[home]) * u.deg)
    ras, decs = centres.ra.deg.copy(), centres.dec.deg.copy()
    ras[home], decs[home] = off.ra.deg, off.dec.deg
    return np.column_stack([ras, decs, sigmas, weights])


def _circle(rng: np.random.Generator, ra: float, dec: float, sigma: float, true_source: bool) -> np.ndarray:
    """An error circle of width ``sigma``: around a real source, its centre scatters by the error."""
    if true_source:
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).directional_offset_by(
            rng.uniform(0, 360) * u.deg, rng.rayleigh(sigma) * u.deg)
        ra, dec = c.ra.deg, c.dec.deg
    return np.array([[ra, dec, sigma, 1.0]])


def _lobes(rng: np.random.Generator, messenger: str, ra: float, dec: float, true_source: bool) -> np.ndarray:
    if messenger == "gw":
        return _gw_lobes(rng, ra, dec)
    if messenger == "gamma":
        return _circle(rng, ra, dec, float(math.hypot(rng.uniform(1.0, 8.0), GBM_SYS_DEG)), true_source)
    return _circle(rng, ra, dec, float(rng.uniform(0.2, 1.0)), true_source)


def build(params: Params, gps0: Optional[float] = None) -> Scenario:
    """Draw the run's alerts (deterministic for a seed and a start time)."""
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False     # nothing here needs Earth-orientation data; never reach the network
    rng = np.random.default_rng(params.seed)
    if gps0 is None:
        gps0 = float(np.floor(Time.now().gps))
    t0 = Time(gps0, format="gps")
    sky_seconds = params.sky_hours * 3600.0
    counters = {m: 0 for m in MESSENGERS}
    planned: List[PlannedAlert] = []

    def make(messenger: str, gps: float, far: float, lobes: np.ndarray, event: Optional[str]) -> PlannedAlert:
        site = SITE_OF[messenger]
        counters[messenger] += 1
        prefix = OBSERVATORIES[site][3]
        aid = f"{prefix}-{counters[messenger]:05d}"
        smap = sky.rasterize(lobes, params.nside) if params.healpix else None
        alert = Alert(aid, messenger, gps, far, lobes, smap)
        return PlannedAlert(alert, site, (gps - gps0) / params.speedup, event, {})

    # Background, a Poisson stream per observatory.
    for _site, (messenger, _, per_day, _) in OBSERVATORIES.items():
        rate = per_day * params.noise_scale / DAY
        n = int(rng.poisson(rate * sky_seconds))
        times = np.sort(rng.uniform(0, sky_seconds, n))
        ras, decs = _random_sky(rng, n)
        for t, ra, dec in zip(times, ras, decs):
            planned.append(make(messenger, gps0 + float(t), float(rng.uniform(0, rate)),
                                _lobes(rng, messenger, float(ra), float(dec), False), None))

    # Injected events: spread over the run, some pinned into fault windows.
    events: List[Event] = []
    n_inj = max(params.injections, len(params.pins))
    kinds = [EVENT_KINDS[i % len(EVENT_KINDS)] for i in range(n_inj)]
    rng.shuffle(kinds)
    duration = params.duration
    walls = [duration * (i + 0.5) / n_inj + rng.uniform(-0.25, 0.25) * duration / n_inj for i in range(n_inj)]
    free = list(range(n_inj))
    for messenger, wall in params.pins:
        # the free slot nearest in time whose kind includes the messenger (or the nearest, kind replaced)
        best = min(free, key=lambda i: (messenger not in kinds[i], abs(walls[i] - wall)))
        if messenger not in kinds[best]:
            kinds[best] = ("gw", messenger) if messenger != "gw" else ("gw", "gamma")
        walls[best] = wall
        free.remove(best)
    walls = [min(max(w, 0.3), duration - 0.3) for w in walls]
    for i, (kind, wall) in enumerate(sorted(zip(kinds, walls), key=lambda kw: kw[1])):
        eid = f"MMA-{i + 1:02d}"
        ra, dec = (float(x[0]) for x in _random_sky(rng, 1))
        gps = gps0 + wall * params.speedup
        offsets = {"gw": 0.0, "gamma": float(rng.uniform(0.5, 2.0)), "neutrino": float(rng.uniform(-100, 100))}
        if "gw" not in kind:
            offsets["neutrino"] = float(rng.uniform(-100, 100))
        for _ in range(50):     # draw until the event is detectable (see the module docstring)
            saved = dict(counters)
            alerts = [make(m, gps + offsets[m], float(np.exp(rng.uniform(*np.log(LOUD_FAR[m])))),
                           _lobes(rng, m, ra, dec, True), eid) for m in kind]
            finder = Finder(params.far_max, params.nside)
            if any(finder.add(p.alert) for p in alerts):
                break
            counters.update(saved)
        planned.extend(alerts)
        events.append(Event(eid, kind, ra, dec, gps, wall, [p.alert.id for p in alerts]))

    planned.sort(key=lambda p: p.wall)
    isot = Time(np.array([p.alert.gps for p in planned]), format="gps").utc.isot if planned else []
    for p, when in zip(planned, isot):
        a = p.alert
        site = p.site
        meta: Dict[str, Any] = {
            "alert_id": a.id, "messenger": a.messenger, "instrument": OBSERVATORIES[site][1],
            "time": str(when), "gps": round(a.gps, 3), "far_hz": a.far,
            "lobes": [[round(float(x), 5) for x in row] for row in a.lobes],
        }
        if a.messenger == "gw":
            meta["area90_deg2"] = round(sky.credible_area(a.skymap, 0.9, params.nside), 1) if a.skymap else None
        else:
            meta.update(ra=round(float(a.lobes[0, 0]), 4), dec=round(float(a.lobes[0, 1]), 4),
                        err_deg=round(float(a.lobes[0, 2]), 3))
        if a.skymap is not None:
            meta["skymap"] = {"nside": params.nside, "ordering": "NESTED", "pixels": int(len(a.skymap[0])),
                              "coverage": sky.COVERAGE, "encoding": "int32 pixels then float32 probabilities"}
        p.meta = meta
    return Scenario(params, gps0, t0.utc.isot, planned, events)


def alert_from_meta(meta: Dict[str, Any], data: Optional[bytes]) -> Alert:
    """An :class:`Alert` back from what travelled: metadata and (if any) the sparse map bytes."""
    smap = sky.decode(data) if data else None
    return Alert(meta["alert_id"], meta["messenger"], float(meta["gps"]), float(meta["far_hz"]),
                 np.asarray(meta["lobes"], dtype=float), smap)
