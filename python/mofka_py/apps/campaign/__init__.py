"""AI-guided molecular screening on the compute pool: xtb ionization potentials, a retrained surrogate, faults.

A Colmena/MOFA-style campaign: a generator proposes molecules (RDKit edits of a seed set of
small drug-like molecules), worker processes compute each one's GFN2-xTB vertical ionization
potential as pool tasks, and a random-forest surrogate on Morgan fingerprints, retrained every K
results, picks the next ones (upper confidence bound). Random search with the same budget runs
alongside as the baseline. With ``--faults``, workers and the fabric service are killed
(kill -9) and restarted while it runs; the report checks that every task still has exactly one
outcome.

    mofka-py app campaign --quick --faults
    mofka-py app campaign --budget 1000 --workers 4 --retrain-every 25 --faults

The heavy imports (RDKit, scikit-learn, xtb, matplotlib) happen inside :func:`run` and the task
functions (:mod:`mofka_py.apps.campaign.tasks`), so building the CLI's help stays fast.
"""
from __future__ import annotations

import argparse

from .._report import Report

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The campaign's own options (``--quick``, ``--faults``, ``--out``, ``--keep`` are common)."""
    from .app import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> Report:
    """Run the campaign as ``args`` says; the returned report is not ok if an invariant failed."""
    from .app import run as run_app

    return run_app(args)
