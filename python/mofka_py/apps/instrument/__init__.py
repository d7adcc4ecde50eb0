"""A detector streaming frames from an MPI job, analysed in real time by a consumer group, steered from the cloud.

``mofka-py app instrument``: an X-ray-detector-like source (Bragg spots on a noisy background,
with a drifting beam and radiation damage) runs as an MPI job whose gateway rank bridges the job's
fabric to a site service; analysis workers in a consumer group find the peaks and keep a
continual-learning quality model up to date (SGD with a rehearsal buffer); results go up to a
cloud Kafka through ``mofka-py bridge``, where a controller sends steering commands (exposure,
sample position) back down to the detector, which applies them at a frame it acknowledges.
``--faults`` kills an analysis worker (kill -9) and cuts the site-to-cloud link for a while.

Processes: ``source`` (the MPI program), ``worker`` (an analysis worker), ``controller`` (the
cloud side); ``app`` runs them all and writes the report (``report``). See
docs/apps-instrument.md.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The application's own options (the framework adds --faults, --quick, --out, --keep)."""
    p.add_argument("--frames", type=int, help="frames to acquire in all (default 1200; --quick 600)")
    p.add_argument("--rate", type=float, help="frames per second of the whole detector (default 20; --quick 30)")
    p.add_argument("--size", type=int, help="frame side in pixels, a multiple of 32 (default 704: 0.95 MiB "
                                            "frames; --quick 512: 0.5 MiB; from 736 up see the known issue in "
                                            "docs/apps-instrument.md)")
    p.add_argument("--ranks", type=int, default=2, help="detector-module ranks of the MPI job (it has one more, "
                                                        "the gateway)")
    p.add_argument("--workers", type=int, default=3, help="analysis workers in the consumer group")
    p.add_argument("--partitions", type=int, default=6, help="partitions of the frames topic")
    p.add_argument("--seed", type=int, default=14, help="seed of the detector simulation")


def run(args: Any) -> Any:
    """Run the pipeline once and return its :class:`~mofka_py.apps.Report`."""
    from .app import run as _run

    return _run(args)
