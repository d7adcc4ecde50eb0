"""The campaign's surrogate: a random forest on Morgan fingerprints that ranks candidates by an
upper confidence bound (mean + kappa x spread of the trees), as in Colmena's and MOFA's
active-learning loops: exploit molecules predicted good, explore those the model is unsure of.

Example::

    model = Surrogate(kappa=1.0).fit(smiles, values)
    ranked = model.rank(candidates)        # [(ucb, mean, std, smiles)], best first
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .chem import fingerprints


class Surrogate:
    """``RandomForestRegressor`` over ECFP4 bits (``trees`` trees, one core: the steering process
    shares the machine with the workers)."""

    def __init__(self, *, trees: int = 64, kappa: float = 1.0, seed: int = 0):
        self.trees, self.kappa, self.seed = trees, kappa, seed
        self._model = None
        self.trained_on = 0

    def fit(self, smiles: Sequence[str], values: Sequence[float]) -> "Surrogate":
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=self.trees, max_features=0.3, min_samples_leaf=1,
                                      n_jobs=1, random_state=self.seed)
        model.fit(fingerprints(smiles), np.asarray(values, dtype=float))
        self._model, self.trained_on = model, len(smiles)
        return self

    def predict(self, smiles: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and spread (standard deviation over the trees) of the predicted property."""
        if self._model is None:
            raise RuntimeError("the surrogate is not trained yet")
        x = fingerprints(smiles)
        per_tree = np.stack([t.predict(x) for t in self._model.estimators_])
        return per_tree.mean(0), per_tree.std(0)

    def rank(self, smiles: Sequence[str]) -> List[Tuple[float, float, float, str]]:
        """Candidates as (ucb, mean, std, smiles), highest upper confidence bound first."""
        if not smiles:
            return []
        mean, std = self.predict(smiles)
        ucb = mean + self.kappa * std
        order = np.argsort(-ucb)
        return [(float(ucb[i]), float(mean[i]), float(std[i]), smiles[i]) for i in order]
