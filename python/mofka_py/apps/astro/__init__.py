"""multi-messenger astronomy: GW, gamma-ray and neutrino alerts bridged to a cloud Kafka, coincidences steer telescopes

Three observatory sites (gravitational waves, gamma-ray bursts, neutrinos), each with its own fabric,
emit alerts with times and HEALPix sky maps plus background alerts at realistic relative rates. Site
bridges (``mofka-py bridge``) carry them, exactly once, to a cloud Kafka-protocol broker, where a
coincidence detector (time windows, sky-map overlap, joint false-alarm rate) finds the injected
multi-messenger events and sends follow-up commands down through the telescope sites' bridges; the
telescopes acknowledge. ``--faults`` cuts one site's link to the cloud for a while and kills another
site's bridge with kill -9 (restarted). See docs/apps-astro.md.

The modules: :mod:`.sky` (maps, overlaps), :mod:`.coincidence` (the test), :mod:`.scenario` (the
sky), :mod:`.site` (observatory and telescope programs), :mod:`.detector` (the cloud service),
:mod:`.wan` (the links), :mod:`.app` (the run), :mod:`.check` (invariants), :mod:`.plots`.
Imports here stay light: the CLI imports this package to build ``--help``.
"""
from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The application's own options (``--faults``, ``--quick``, ``--out``, ``--keep`` are common)."""
    g = p.add_argument_group("sky")
    g.add_argument("--sky-hours", type=float, default=None,
                   help="sky time the run covers (default 48; --quick: 20)")
    g.add_argument("--speedup", type=float, default=3600.0,
                   help="sky seconds per wall-clock second (default %(default)g: a sky hour a second)")
    g.add_argument("--injections", type=int, default=None,
                   help="multi-messenger events injected (default 12; --quick: 6)")
    g.add_argument("--noise-scale", type=float, default=1.0,
                   help="multiply the background alert rates (6 GW, 40 gamma-ray, 600 neutrino a sky day)")
    g.add_argument("--far-per-day", type=float, default=None,
                   help="detection threshold: joint false-alarm rate per sky day (default 1/30: one chance "
                        "coincidence a month)")
    g.add_argument("--nside", type=int, default=128, help="HEALPix resolution of the sky maps (default %(default)s)")
    g.add_argument("--seed", type=int, default=14, help="random seed of the sky (default %(default)s)")
    f = p.add_argument_group("faults (with --faults)")
    f.add_argument("--cut-site", default="icecube", choices=["ligo", "fermi", "icecube"],
                   help="the observatory whose link to the cloud is cut (default %(default)s)")
    f.add_argument("--outage", type=float, default=None,
                   help="seconds the link stays down (default: 6 with --quick, else a fifth of the run, at most 15)")
    f.add_argument("--link-fault", default="blackhole", choices=["blackhole", "reset"],
                   help="how the link is cut: blackhole (nothing passes, connections stall, as on a dead link) or "
                        "reset (connections reset, as by a firewall losing its state) (default %(default)s)")
    f.add_argument("--kill-site", default="fermi", choices=["ligo", "fermi", "icecube", "ztf", "rubin"],
                   help="the site whose bridge is killed with kill -9 and restarted (default %(default)s)")


def run(args: Any) -> Any:
    """Run the application; returns its :class:`~mofka_py.apps.Report`."""
    from .app import run as _run

    return _run(args)
