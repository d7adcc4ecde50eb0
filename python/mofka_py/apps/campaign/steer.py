"""The campaign's steering side (the "thinker"): pool agents that keep a fixed number of
simulations in flight for two arms with the same budget —

- ``campaign``: candidates proposed by the generator (offspring of the best molecules found
  so far, and fresh random molecules), ranked by the surrogate — retrained in a thread of its
  own every K results, so the agents never wait for it — highest upper confidence bound first;
- ``random``: random molecules from the same generator (seeds plus 1-3 random edits) —
  random search with the same budget, the baseline the campaign must beat.

Every outcome goes through ``@pool.on_result``; the thinker counts each task id's outcomes, so
a task without one (lost) or with two (duplicate) shows in the report.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .chem import Generator
from .surrogate import Surrogate

ARMS = ("campaign", "random")


@dataclass
class Sim:
    """One simulation as the steering side saw it (times in seconds since the campaign start)."""

    task_id: str
    arm: str
    smiles: str
    submitted: float
    predicted: Optional[float] = None     # surrogate mean when it was picked
    baseline: Optional[float] = None      # mean of the training values then (a model-free guess)
    done: Optional[float] = None
    ok: bool = False
    value: Optional[float] = None
    engine: Optional[str] = None
    attempts: int = 0
    worker: Optional[str] = None
    failure: Optional[str] = None
    error: Optional[str] = None
    seconds: Optional[float] = None       # the simulation itself, on the worker


class Thinker:
    """Steers ``pool`` (a :class:`mofka_py.services.Pool`): ``budget`` simulations per arm,
    ``in_flight`` of each arm at a time, the surrogate retrained every ``retrain_every``
    campaign outcomes on ``candidates`` fresh offspring of the ``parents`` best molecules."""

    def __init__(self, pool: Any, seeds: List[str], *, budget: int, in_flight: int, retrain_every: int,
                 engine: str, conformers: int, max_atoms: int = 14, candidates: int = 400, parents: int = 4,
                 kappa: float = 1.0, trees: int = 64, retries: int = 2, timeout: float = 120.0, seed: int = 0,
                 on_progress: Optional[Callable[["Thinker"], None]] = None):
        self.pool, self.seeds = pool, list(seeds)
        self.budget, self.in_flight, self.retrain_every = budget, in_flight, retrain_every
        self.engine, self.conformers = engine, conformers
        self.candidates, self.parents, self.kappa, self.trees = candidates, parents, kappa, trees
        self.retries, self.timeout = retries, timeout
        self.on_progress = on_progress
        # One generator per thread that uses it (each with its own random stream).
        self._gen = {arm: Generator(seeds, max_atoms=max_atoms, rng=random.Random(seed * 10 + k))
                     for k, arm in enumerate(ARMS)}
        self._gen_train = Generator(seeds, max_atoms=max_atoms, rng=random.Random(seed * 10 + 7))
        self.sims: Dict[str, Sim] = {}
        self.completed: List[Sim] = []              # in the order the outcomes arrived
        self.submitted = {arm: 0 for arm in ARMS}
        self.finished_n = {arm: 0 for arm in ARMS}
        self._tried = {arm: set() for arm in ARMS}  # SMILES submitted per arm (no molecule twice)
        self.outcomes_seen: Dict[str, int] = {}      # task id -> outcomes delivered (must be 1)
        self.duplicates = 0
        self.redelivered = 0
        self.stopping = False                        # no more submissions (deadline or budget reached)
        self.retrains: List[Dict[str, Any]] = []
        self.unscreened = 0                          # campaign picks made without a ranked candidate
        self._ranked: List[Tuple[float, float, float, str]] = []
        self._model_mean: Optional[float] = None
        self._since_train = 0
        self._lock = threading.Lock()
        self._train_wanted = threading.Event()
        self._stop = threading.Event()
        self._trainer = threading.Thread(target=self._train_loop, name="campaign-trainer", daemon=True)
        self.t0 = time.monotonic()
        self.train_errors: List[str] = []
        self.last_outcome = 0.0                      # when the latest outcome arrived

    # ------------------------------------------------------------------ clock
    def now(self) -> float:
        return time.monotonic() - self.t0

    # ------------------------------------------------------------------ submit
    def start(self) -> None:
        """Register the agent, start the trainer and fill both arms' slots."""
        self.t0 = time.monotonic()
        self.pool.on_result("simulate")(self._on_result)
        self._trainer.start()
        for _ in range(self.in_flight):
            for arm in ARMS:
                self._submit(arm)

    def _pick(self, arm: str) -> Tuple[str, Optional[float], Optional[float]]:
        gen, tried = self._gen[arm], self._tried[arm]
        if arm == "random":
            for _ in range(100):
                smi = gen.random_molecule()
                if smi not in tried:
                    return smi, None, None
            return smi, None, None
        with self._lock:
            while self._ranked:
                _, mean, _, smi = self._ranked.pop(0)
                if smi not in tried:
                    return smi, mean, self._model_mean
        # No ranked candidate (before the first model, or the list ran out before the next one):
        # an unscreened offspring of the best so far, or a random molecule at the very start.
        self.unscreened += 1
        best = self.best_molecules("campaign", self.parents)
        if best:
            for _ in range(50):
                smi = gen.mutate(gen.rng.choice(best))
                if smi is not None and smi not in tried:
                    return smi, None, None
        for _ in range(100):
            smi = gen.random_molecule()
            if smi not in tried:
                break
        return smi, None, None

    def _submit(self, arm: str) -> None:
        if self.stopping or self.submitted[arm] >= self.budget:
            return
        smi, predicted, baseline = self._pick(arm)
        fut = self.pool.submit("simulate", smi, self.engine, self.conformers, retries=self.retries,
                               timeout=self.timeout)
        with self._lock:
            self._tried[arm].add(smi)
            self.sims[fut.task_id] = Sim(fut.task_id, arm, smi, self.now(), predicted, baseline)
            self.submitted[arm] += 1

    # ------------------------------------------------------------------ outcomes
    def _on_result(self, result: Any) -> None:
        n = self.outcomes_seen.get(result.task_id, 0) + 1
        self.outcomes_seen[result.task_id] = n
        if result.redelivered:
            self.redelivered += 1
        sim = self.sims.get(result.task_id)
        if n > 1 or sim is None:
            self.duplicates += 1   # a second outcome for a task (or one this thinker never submitted)
            return
        sim.done, sim.ok, sim.attempts, sim.worker = self.now(), result.ok, result.attempts, result.worker
        self.last_outcome = sim.done
        if result.ok:
            sim.value, sim.engine, sim.seconds = result.value["value"], result.value["engine"], result.value["seconds"]
        else:
            sim.failure, sim.error = result.failure, result.error
        with self._lock:
            self.completed.append(sim)
            self.finished_n[sim.arm] += 1
        if sim.arm == "campaign":
            self._since_train += 1
            if self._since_train >= self.retrain_every:
                self._since_train = 0
                self._train_wanted.set()
        self._submit(sim.arm)
        if self.on_progress is not None:
            self.on_progress(self)

    def outstanding(self) -> int:
        """Tasks submitted that have no outcome yet."""
        return sum(self.submitted.values()) - sum(self.finished_n.values())

    def finished(self) -> bool:
        """Every arm spent its budget (or submissions stopped) and every task has its outcome."""
        done = self.stopping or all(self.submitted[a] >= self.budget for a in ARMS)
        return done and self.outstanding() == 0

    def stop_submitting(self) -> None:
        self.stopping = True

    # ------------------------------------------------------------------ surrogate
    def _train_loop(self) -> None:
        while not self._stop.is_set():
            if not self._train_wanted.wait(0.1):
                continue
            self._train_wanted.clear()
            try:
                self._retrain()
            except Exception as exc:  # a failed retrain keeps the previous ranking; reported
                self.train_errors.append(f"{type(exc).__name__}: {exc}")

    def _retrain(self) -> None:
        t0 = time.monotonic()
        with self._lock:
            data = [(s.smiles, s.value) for s in self.completed if s.arm == "campaign" and s.ok]
            tried = set(self._tried["campaign"])
        if len(data) < 4:
            return
        smiles, values = zip(*data)
        model = Surrogate(trees=self.trees, kappa=self.kappa, seed=len(data)).fit(smiles, values)
        # Candidates: half offspring of the best so far (exploitation), half fresh random molecules
        # (so the campaign is not stuck around its first good scaffold); the surrogate screens them all.
        gen = self._gen_train
        parents = [smi for smi, _ in sorted(data, key=lambda d: -d[1])[:self.parents]]
        cands = gen.offspring(parents + gen.rng.sample(self.seeds, 2), self.candidates // 2, exclude=tried)
        fresh = {gen.random_molecule() for _ in range(self.candidates - len(cands))} - tried - set(cands)
        cands += sorted(fresh)
        ranked = model.rank(cands)
        mean = sum(values) / len(values)
        with self._lock:
            self._ranked = ranked
            self._model_mean = mean
        self.retrains.append({"t": self.now(), "trained_on": len(data), "seconds": time.monotonic() - t0,
                              "candidates": len(cands), "top_ucb": ranked[0][0] if ranked else None})

    def close(self) -> None:
        self._stop.set()
        if self._trainer.is_alive():
            self._trainer.join(30)

    # ------------------------------------------------------------------ figures
    def arm_sims(self, arm: str) -> List[Sim]:
        """The arm's completed simulations, in the order their outcomes arrived."""
        with self._lock:
            return [s for s in self.completed if s.arm == arm]

    def best_molecules(self, arm: str, n: int) -> List[str]:
        with self._lock:
            ok = [s for s in self.completed if s.arm == arm and s.ok]
        return [s.smiles for s in sorted(ok, key=lambda s: -s.value)[:n]]

    def best(self, arm: str, first: Optional[int] = None) -> Optional[Sim]:
        """The arm's best simulation (among its first ``first`` outcomes)."""
        sims = self.arm_sims(arm)[:first]
        ok = [s for s in sims if s.ok]
        return max(ok, key=lambda s: s.value) if ok else None
