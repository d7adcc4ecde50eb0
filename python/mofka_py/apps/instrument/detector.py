"""A serial-crystallography-like X-ray detector: Bragg spots on a noisy background, with drifts.

The model (numpy only; one instance per source rank, all ranks in step):

- The **beam flux** drifts slowly (``flux(t)``, a sinusoid around 1), as a storage ring's does
  between top-ups; background and spots both scale with ``flux * exposure``.
- The **crystal** at sample position ``p`` has a fixed set of reflections (positions on the
  detector, intensities drawn from Wilson statistics: exponential) and a quality factor; each
  frame sees the random subset in diffracting condition (the rotation).
- **Radiation damage**: the dose received at the current position (``flux * exposure`` integrated
  over time since the sample moved there) fades the spots as ``exp(-dose / damage_s)``.
- Pixels: background ``lam = b0 * flux * exposure * (air scatter + solvent ring)`` with Poisson
  noise (its Gaussian approximation, N(lam, lam), which is close at these counts and ~6x cheaper
  than drawing Poisson per pixel); each spot a Gaussian profile with exact Poisson counts.

A frame's true quality is the number of its spots detectable at integrated SNR >= 5 over a 3x3
box (what a good peak finder can find), from the model's own numbers; the analysis never sees it
except to score its predictions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

B0 = 10.0               # background counts per pixel at flux * exposure = 1
I0 = 110.0              # mean integrated spot counts of a fresh crystal at flux * exposure = 1
REFLECTIONS = 420       # reflections per crystal
VISIBLE = 0.15          # fraction in diffracting condition per frame
SIGMA = 0.9             # spot width (pixels)
SNR_MIN = 5.0           # integrated SNR over a 3x3 box for a spot to count as detectable
BOX = 9                 # pixels in that box
FLUX_PERIOD_S = 16.0
FLUX_AMPLITUDE = 0.35
DAMAGE_S = 7.0          # dose (nominal seconds of exposure) that fades spots by 1/e


def flux(t: float) -> float:
    """Relative beam flux ``t`` seconds after the start of acquisition."""
    return 1.0 + FLUX_AMPLITUDE * math.sin(2 * math.pi * t / FLUX_PERIOD_S - 1.2)


@dataclass
class Settings:
    """What steering may change."""

    exposure: float = 1.0   # relative exposure time
    position: int = 0       # sample position (a fresh crystal at each one)


class Crystal:
    """The reflections of the crystal at one sample position."""

    def __init__(self, position: int, shape: Tuple[int, int], seed: int):
        rng = np.random.default_rng([seed, position])
        h, w = shape
        cy, cx = h / 2, w / 2
        rmin, rmax = 0.08 * min(h, w), 0.48 * min(h, w)
        r = np.sqrt(rng.uniform(rmin ** 2, rmax ** 2, REFLECTIONS))
        a = rng.uniform(0, 2 * np.pi, REFLECTIONS)
        self.y = np.clip(cy + r * np.sin(a), 4, h - 5)
        self.x = np.clip(cx + r * np.cos(a), 4, w - 5)
        self.quality = rng.uniform(0.75, 1.25)
        self.intensity = rng.exponential(I0, REFLECTIONS) * self.quality   # Wilson statistics
        self.position = position


class Detector:
    """Frames of ``size`` x ``size`` uint16 pixels; ``frame(k, t, settings, dose)`` draws frame ``k``."""

    def __init__(self, size: int, seed: int = 14, rank: int = 0):
        self.shape = (size, size)
        self.seed = seed
        self.rng = np.random.default_rng([seed, 1000 + rank])
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        r = np.hypot(yy - size / 2, xx - size / 2) / (size / 2)
        # Air scatter falling off with radius plus a solvent ring, relative to B0.
        self.profile = (0.75 + 0.35 * (1 - np.clip(r, 0, 1)) + 0.45 * np.exp(-((r - 0.55) / 0.06) ** 2)).astype(np.float32)
        self._crystal: Crystal = Crystal(0, self.shape, seed)
        half = 3
        g = np.arange(-half, half + 1, dtype=np.float64)
        self._g = g
        self._half = half

    def profile_median(self) -> float:
        """The median background per pixel at flux x exposure = 1, relative to B0 (what analysis measures)."""
        return float(np.median(self.profile))

    def crystal(self, position: int) -> Crystal:
        if self._crystal.position != position:
            self._crystal = Crystal(position, self.shape, self.seed)
        return self._crystal

    def truth(self, k: int, phi: float, settings: Settings, dose: float) -> Dict[str, Any]:
        """The visible reflections of frame ``k`` and the frame's true quality (no pixels drawn)."""
        cr = self.crystal(settings.position)
        vis = np.random.default_rng([self.seed, settings.position, k]).random(REFLECTIONS) < VISIBLE
        fade = math.exp(-dose / DAMAGE_S)
        counts = cr.intensity[vis] * phi * fade
        iy, ix = cr.y[vis].astype(int), cr.x[vis].astype(int)
        lam = B0 * phi * self.profile[iy, ix]
        in_box = counts * 0.75     # share of a sigma-0.9 spot inside its 3x3 box
        snr = in_box / np.sqrt(in_box + BOX * lam)
        return {"vis": vis, "counts": counts, "quality": int(np.count_nonzero(snr >= SNR_MIN)),
                "fade": fade, "visible": int(vis.sum())}

    def frame(self, k: int, t: float, settings: Settings, dose: float) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Frame ``k`` acquired at ``t`` s with ``settings`` after ``dose``: (pixels, truth)."""
        f = flux(t)
        phi = f * settings.exposure
        tr = self.truth(k, phi, settings, dose)
        lam = self.profile * np.float32(B0 * phi)
        img = self.rng.standard_normal(self.shape, dtype=np.float32)
        img *= np.sqrt(lam)
        img += lam
        cr = self._crystal
        vis = tr["vis"]
        g, half = self._g, self._half
        ys, xs = cr.y[vis], cr.x[vis]
        y0, x0 = ys.astype(int), xs.astype(int)
        # Gaussian profiles sampled on a 7x7 grid around each spot, then Poisson counts.
        py = np.exp(-0.5 * ((y0[:, None] + g[None, :] - ys[:, None]) / SIGMA) ** 2)
        px = np.exp(-0.5 * ((x0[:, None] + g[None, :] - xs[:, None]) / SIGMA) ** 2)
        prof = py[:, :, None] * px[:, None, :]
        prof /= prof.sum(axis=(1, 2), keepdims=True)
        spots = self.rng.poisson(prof * tr["counts"][:, None, None]).astype(np.float32)
        for j in range(len(y0)):
            img[y0[j] - half:y0[j] + half + 1, x0[j] - half:x0[j] + half + 1] += spots[j]
        np.clip(img, 0, 65535, out=img)
        out = np.rint(img).astype(np.uint16)
        truth = {"quality": tr["quality"], "visible": tr["visible"], "flux": round(f, 4), "fade": round(tr["fade"], 4),
                 "dose": round(dose, 3)}
        return out, truth
