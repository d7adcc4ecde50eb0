"""Sky localisations and how two of them overlap.

A localisation is modelled as a mixture of Fisher (von Mises-Fisher) lobes on the sphere, one row
``[ra_deg, dec_deg, sigma_deg, weight]`` per lobe: a gamma-ray burst or a neutrino is one lobe (an
error circle), a gravitational-wave skymap several lobes along the ring of constant arrival-time
delay between detectors (the broad, banana-shaped, multi-modal maps of LIGO/Virgo/KAGRA alerts).

Alerts carry the localisation as a sparse HEALPix probability map (NESTED pixels holding 99.9% of
the probability at one ``nside``, as real GW skymaps hold a multi-order map) made with healpy. The
coincidence statistic is the sky-overlap integral of two maps relative to an isotropic sky:
``I = 4π ∫ p1 p2 dΩ = Npix Σ P1_i P2_i`` (1 for unrelated maps on average, tens to hundreds for a
common source), as RAVEN (the LVK's GW-GRB search) uses. Without healpy the same integral is
computed from the lobes in closed form (:func:`overlap_lobes`), and both agree where the pixels
resolve the maps.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

NSIDE = 128          # 0.46 deg pixels, 196,608 of them: resolves sub-degree neutrino circles
COVERAGE = 0.999     # probability kept in a sparse map

SparseMap = Tuple[np.ndarray, np.ndarray]   # (NESTED pixel indices, int32 ascending; probabilities, float32)


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def kappa(sigma_deg: np.ndarray) -> np.ndarray:
    """Fisher concentration of a lobe with angular width ``sigma`` (small-angle: 1/sigma^2)."""
    return 1.0 / np.radians(sigma_deg) ** 2


def _log_norm(k: np.ndarray) -> np.ndarray:
    """log of the Fisher normalisation k / (4π sinh k), stable from k = 0 to k = 1e6."""
    k = np.asarray(k, dtype=float)
    small = k < 1e-8
    ks = np.where(small, 1.0, k)
    log_sinh = ks + np.log1p(-np.exp(-2.0 * ks)) - math.log(2.0)
    return np.where(small, -math.log(4 * math.pi), np.log(ks) - math.log(4 * math.pi) - log_sinh)


def density(lobes: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Probability density (per steradian) of a lobe mixture at unit vectors ``xyz`` (n, 3)."""
    lobes = np.asarray(lobes, dtype=float)
    mu = _unit(lobes[:, 0], lobes[:, 1])
    k = kappa(lobes[:, 2])
    w = lobes[:, 3] / lobes[:, 3].sum()
    # k/(4π sinh k) exp(k μ·x) = k / (2π (1 - e^-2k)) exp(k (μ·x - 1)): no overflow for sharp lobes.
    cos = xyz @ mu.T
    norm = k / (2 * math.pi * -np.expm1(-2 * k))
    return (np.exp(k * (cos - 1.0)) * (w * norm)).sum(axis=1)


def rasterize(lobes: np.ndarray, nside: int = NSIDE, coverage: float = COVERAGE) -> SparseMap:
    """The sparse HEALPix map of a lobe mixture: the fewest NESTED pixels holding ``coverage`` of the
    probability, renormalised to 1 (needs healpy)."""
    import healpy as hp

    lobes = np.asarray(lobes, dtype=float)
    pix_rad = hp.nside2resol(nside)
    mask = np.zeros(12 * nside * nside, dtype=bool)     # candidate pixels (a mask: cheaper than np.unique)
    for ra, dec, sigma, _ in lobes:
        vec = hp.ang2vec(ra, dec, lonlat=True)
        # 4.5 sigma holds all but 4e-5 of a lobe, well inside what the map keeps (COVERAGE)
        radius = min(math.pi, 4.5 * math.radians(sigma) + 2 * pix_rad)
        mask[hp.query_disc(nside, vec, radius, inclusive=True, nest=True)] = True
        mask[hp.vec2pix(nside, *vec, nest=True)] = True     # the centre's pixel, however sharp the lobe
    ipix = np.flatnonzero(mask)
    xyz = np.stack(hp.pix2vec(nside, ipix, nest=True), axis=-1)
    prob = density(lobes, xyz)
    if not prob.sum() > 0:      # a lobe far sharper than a pixel: all of it in the centre's pixel
        prob = np.zeros(len(ipix))
        prob[np.searchsorted(ipix, hp.vec2pix(nside, *hp.ang2vec(lobes[0, 0], lobes[0, 1], lonlat=True),
                                              nest=True))] = 1.0
    prob /= prob.sum()
    order = np.argsort(prob)[::-1]
    keep = order[: int(np.searchsorted(np.cumsum(prob[order]), coverage)) + 1]
    keep.sort()
    p = prob[keep]
    return ipix[keep].astype(np.int32), (p / p.sum()).astype(np.float32)


def encode(m: SparseMap) -> bytes:
    """A sparse map as bytes: the pixel indices (int32) then the probabilities (float32), little-endian."""
    return m[0].astype("<i4").tobytes() + m[1].astype("<f4").tobytes()


def decode(buf: bytes) -> SparseMap:
    n = len(buf) // 8
    return (np.frombuffer(buf, dtype="<i4", count=n), np.frombuffer(buf, dtype="<f4", count=n, offset=4 * n))


def overlap_maps(a: SparseMap, b: SparseMap, nside: int = NSIDE) -> float:
    """Sky-overlap integral of two sparse maps relative to isotropy: ``Npix Σ P1 P2`` (0 if disjoint)."""
    _, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    if not len(ia):
        return 0.0
    return float(12 * nside * nside * np.dot(a[1][ia].astype(float), b[1][ib].astype(float)))


def overlap_lobes(a: np.ndarray, b: np.ndarray) -> float:
    """The same integral from the lobes, in closed form: for Fisher lobes
    ``∫ f1 f2 dΩ = c(k1) c(k2) / c(|k1 μ1 + k2 μ2|)`` with ``c(k) = k / (4π sinh k)``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ka, kb = kappa(a[:, 2])[:, None], kappa(b[:, 2])[None, :]
    ma, mb = _unit(a[:, 0], a[:, 1])[:, None, :], _unit(b[:, 0], b[:, 1])[None, :, :]
    k12 = np.linalg.norm(ka[..., None] * ma + kb[..., None] * mb, axis=-1)
    log_o = _log_norm(ka) + _log_norm(kb) - _log_norm(k12)
    w = (a[:, 3] / a[:, 3].sum())[:, None] * (b[:, 3] / b[:, 3].sum())[None, :]
    return float(4 * math.pi * (w * np.exp(log_o)).sum())


def credible_area(m: SparseMap, level: float = 0.9, nside: int = NSIDE) -> float:
    """Area (deg^2) of the smallest region holding ``level`` of the probability."""
    p = np.sort(m[1].astype(float))[::-1]
    n = int(np.searchsorted(np.cumsum(p), level)) + 1
    return n * 4 * 180.0 ** 2 / math.pi / (12 * nside * nside)


def product_peak(a: SparseMap, b: SparseMap, nside: int = NSIDE) -> Tuple[float, float, float]:
    """Where to point a telescope: the most probable pixel of the product of two maps (ra, dec in deg)
    and the radius (deg) of a circle as large as the product's 90% region."""
    import healpy as hp

    common, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    if not len(common):
        return float("nan"), float("nan"), float("nan")
    prod = a[1][ia].astype(float) * b[1][ib].astype(float)
    ra, dec = hp.pix2ang(nside, int(common[np.argmax(prod)]), nest=True, lonlat=True)
    area = credible_area((common, prod / prod.sum()), 0.9, nside)
    return float(ra), float(dec), math.sqrt(area / math.pi)


def lobes_peak(a: np.ndarray, b: np.ndarray) -> Tuple[float, float, float]:
    """:func:`product_peak` without healpy: the product's dominant lobe (a product of Fisher lobes is
    a Fisher lobe with k = |k1 μ1 + k2 μ2|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    best = None
    for la in a:
        for lb in b:
            ka, kb = kappa(la[2]), kappa(lb[2])
            v = ka * _unit(la[0], la[1]) + kb * _unit(lb[0], lb[1])
            k12 = float(np.linalg.norm(v))
            score = la[3] * lb[3] * math.exp(float(_log_norm(ka) + _log_norm(kb) - _log_norm(k12)))
            if best is None or score > best[0]:
                best = (score, v / k12, k12)
    assert best is not None
    _, v, k12 = best
    sigma = math.degrees(1 / math.sqrt(k12))
    return (math.degrees(math.atan2(v[1], v[0])) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, v[2])))),
            2.146 * sigma)   # the 90% radius of a 2-d Gaussian
