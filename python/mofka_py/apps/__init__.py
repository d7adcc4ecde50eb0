"""Science applications on the fabric and its resilience services, each one command:

- ``mofka-py app campaign``: an AI-guided molecular screening campaign on the compute pool
  (RDKit / xtb simulations, a scikit-learn surrogate retrained as results arrive).
- ``mofka-py app instrument``: a detector streaming frames from an MPI job, analysed in real
  time by a consumer group, with steering commands sent back to the source.
- ``mofka-py app astro``: multi-messenger alerts from three observatory sites, bridged to a
  cloud Kafka where a coincidence detector triggers follow-up at telescope sites.

Each injects failures on request (``--faults``), shows live progress (with the fabric's health
events), prints a service-level table and writes plots. They need the ``apps`` extra:
``pip install mofka-py[apps]``. ``mofka-py app all`` runs the three in turn and prints one
summary table (the README's demo).
"""
from __future__ import annotations

from ._report import Report, Row

APPS = {
    "campaign": "mofka_py.apps.campaign",
    "instrument": "mofka_py.apps.instrument",
    "astro": "mofka_py.apps.astro",
}

__all__ = ["APPS", "Report", "Row"]
