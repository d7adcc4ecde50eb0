"""Frame analysis: a Bragg peak finder, cheap frame features, and a continual-learning quality model.

- :func:`find_peaks`: the local background from block medians, pixels above 4 sigma grouped into
  connected regions (``scipy.ndimage.label``), each region kept when its integrated SNR over the
  3x3 box around its brightest pixel reaches 5 (the approach of Cheetah's peakfinder8). The
  measured quality of a frame is its number of peaks.
- :func:`features`: a few numbers from a 4x4-binned frame (how many bins stand out at several
  levels, the background, the exposure) that cost a fraction of the peak finder.
- :class:`QualityModel`: an SGD regressor from the features to the peak count, updated with every
  analysed frame (continual learning) from the new sample plus samples replayed from a rehearsal
  buffer, as in Bouvier et al. (data-parallel continual learning with rehearsal buffers). The
  buffer is a reservoir per quality bin (their per-class buffers), so conditions not seen for a
  while (a fresh crystal while the current one is damaged) are still rehearsed. The same model
  without rehearsal learns alongside, for comparison.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

BLOCK = 32          # background block (pixels)
PIXEL_SIGMA = 4.0   # a pixel stands out above this many background sigmas
SNR_MIN = 5.0       # integrated SNR over the 3x3 box for a peak
MAX_LISTED = 32     # peaks listed in a result (the strongest); the count covers all

N_FEATURES = 10


def background(img: np.ndarray) -> np.ndarray:
    """Per-pixel background: the median of each BLOCK x BLOCK block (of every other pixel)."""
    h, w = img.shape
    sub = img[::2, ::2]
    b = BLOCK // 2
    blocks = sub.reshape(h // BLOCK, b, w // BLOCK, b).transpose(0, 2, 1, 3).reshape(h // BLOCK, w // BLOCK, b * b)
    med = np.median(blocks, axis=2).astype(np.float32)
    return np.repeat(np.repeat(med, BLOCK, axis=0), BLOCK, axis=1)


def find_peaks(img: np.ndarray) -> Tuple[List[List[float]], int, float]:
    """Bragg peaks of ``img`` (uint16): (strongest peaks as [y, x, counts, snr], how many, median bg)."""
    from scipy import ndimage

    bg = background(img)
    f = img.astype(np.float32)
    f -= bg
    sig = np.sqrt(np.maximum(bg, 1.0))
    mask = f > PIXEL_SIGMA * sig
    labels, n = ndimage.label(mask)
    if n == 0:
        return [], 0, float(np.median(bg))
    # The brightest pixel of each region (few pixels stand out: sort them, not the frame).
    ys, xs = np.nonzero(mask)
    lab = labels[ys, xs]
    order = np.lexsort((f[ys, xs], lab))
    last = np.r_[lab[order][1:] != lab[order][:-1], True]
    h, w = img.shape
    y = np.clip(ys[order][last], 1, h - 2)
    x = np.clip(xs[order][last], 1, w - 2)
    box = np.zeros(len(y), dtype=np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            box += f[y + dy, x + dx]
    b = bg[y, x]
    snr = box / np.sqrt(np.maximum(box, 0) + 9 * b)
    keep = snr >= SNR_MIN
    count = int(keep.sum())
    order = np.argsort(-box[keep])[:MAX_LISTED]
    peaks = np.stack([y[keep], x[keep], box[keep], snr[keep]], axis=1)[order]
    listed = [[int(p[0]), int(p[1]), round(float(p[2]), 1), round(float(p[3]), 2)] for p in peaks]
    return listed, count, float(np.median(bg))


def features(img: np.ndarray, exposure: float) -> np.ndarray:
    """Cheap features of a frame: counts of 4x4 bins above the background at several levels, and more."""
    h, w = img.shape
    binned = img.reshape(h // 4, 4, w // 4, 4).sum(axis=(1, 3), dtype=np.float32)
    med = float(np.median(binned[::2, ::2]))
    z = (binned - med) / np.sqrt(max(med, 1.0))
    x = np.empty(N_FEATURES)
    for i, level in enumerate((3.0, 4.0, 5.0, 7.0, 10.0, 15.0)):
        x[i] = np.log1p(np.count_nonzero(z > level))
    x[6] = np.percentile(z[::2, ::2], 99.9) / 10.0
    x[7] = np.log(max(med / 16.0, 1e-3)) / 3.0
    x[8] = exposure
    x[9] = float(np.count_nonzero(z > 5.0)) / z.size * 100.0
    return x


class QualityModel:
    """Predicts a frame's quality from :func:`features`, learning from each analysed frame.

    ``learn(x, y)`` takes one SGD step on the new sample plus ``replay`` samples drawn from the
    rehearsal buffer (``rehearsal=True``), or on the new sample alone. The buffer keeps up to
    ``capacity`` samples in ``bins`` quality bins, each a reservoir.

    >>> m = QualityModel(seed=1)
    >>> m.predict(np.ones(N_FEATURES))        # nothing learnt yet
    0.0
    """

    SCALE = 50.0    # peaks per unit of the regression target

    def __init__(self, rehearsal: bool = True, capacity: int = 600, bins: int = 6, replay: int = 12,
                 lr: float = 0.02, seed: int = 0):
        from sklearn.linear_model import SGDRegressor
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler()     # follows the features' drift too (partial_fit on every sample)
        self.rehearsal, self.replay = rehearsal, replay
        self.sgd = SGDRegressor(loss="huber", epsilon=0.3, penalty="l2", alpha=1e-5, learning_rate="constant",
                                eta0=lr, random_state=seed)
        self.rng = np.random.default_rng(seed)
        self.bins = bins
        self.per_bin = max(1, capacity // bins)
        self.buffer: List[List[Tuple[np.ndarray, float]]] = [[] for _ in range(bins)]
        self.seen_per_bin = [0] * bins
        self.seen = 0

    def predict(self, x: np.ndarray) -> float:
        if self.seen == 0:
            return 0.0
        return max(0.0, float(self.sgd.predict(self.scaler.transform(x[None, :]))[0]) * self.SCALE)

    def _bin(self, y: float) -> int:
        return min(self.bins - 1, int(y / self.SCALE * self.bins / 2.0))

    def learn(self, x: np.ndarray, y: float) -> None:
        target = y / self.SCALE
        self.scaler.partial_fit(x[None, :])
        if self.rehearsal and self.seen:
            pool = [s for b in self.buffer for s in b]
            picks = self.rng.choice(len(pool), size=min(self.replay, len(pool)), replace=False)
            xs = np.vstack([x] + [pool[i][0] for i in picks])
            ys = np.array([target] + [pool[i][1] for i in picks])
        else:
            xs, ys = x[None, :], np.array([target])
        self.sgd.partial_fit(self.scaler.transform(xs), ys)
        self.seen += 1
        if self.rehearsal:
            b = self._bin(y)
            self.seen_per_bin[b] += 1
            slot = self.buffer[b]
            if len(slot) < self.per_bin:
                slot.append((x, target))
            else:
                j = int(self.rng.integers(self.seen_per_bin[b]))
                if j < self.per_bin:
                    slot[j] = (x, target)

    def state(self) -> Dict[str, Any]:
        return {"seen": self.seen, "buffer": sum(len(b) for b in self.buffer)}
