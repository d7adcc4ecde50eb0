"""``mofka-py bridge``: its help names every form and gives each option a help text and default; ``check``
starts nothing; ``status --json``; a wrong form says what the right ones are."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import mofka_py as mp
from mofka_py.bridge import cli as bridge_cli

from kafka_helpers import run_bridge_process, stop_process, tansu  # noqa: F401 - fixture

FORMS = ["mofka-py bridge CONFIG.toml", "mofka-py bridge run CONFIG.toml", "mofka-py bridge check CONFIG.toml",
         "mofka-py bridge status CONFIG.toml"]


def _bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", *args], capture_output=True, text=True,
                          timeout=60)


def test_help_names_every_form_and_documents_every_option():
    out = _bridge("--help")
    assert out.returncode == 0, out.stderr
    for form in FORMS:
        assert form in out.stdout, f"{form!r} missing from --help:\n{out.stdout}"
    top = argparse.ArgumentParser()
    bridge_cli.add_parser(top.add_subparsers())     # the entry point the top-level CLI calls
    parser = top._subparsers._group_actions[0].choices["bridge"]
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert {o.dest for o in options} >= {"log_level", "json"}
    for action in options:
        assert action.help and "default" in action.help, f"{action.option_strings} has no help or default"
        assert action.option_strings[0] in out.stdout
    for action in parser._actions:
        assert action.help, f"{action.dest} has no help text"


def test_wrong_forms_say_what_the_right_ones_are(tmp_path):
    out = _bridge("frobnicate", str(tmp_path / "b.toml"))
    assert out.returncode != 0 and "bridge CONFIG.toml" in out.stderr and "check" in out.stderr, out.stderr
    out = _bridge("status")
    assert out.returncode != 0 and "give the bridge's CONFIG.toml" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def _config(tmp_path, tansu_url):  # noqa: F811
    src = f"file://{tmp_path}/site"
    with mp.connect(src) as fab:
        fab.create_topic("frames", partitions=2)
        with fab.topic("frames").producer() as prod:
            prod.push_many([{"i": i} for i in range(50)])
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(textwrap.dedent(f"""
        [bridge]
        site = "cli"

        [endpoints.site]
        url = "{src}"

        [endpoints.cloud]
        url = "{tansu_url}"

        [[rules]]
        name = "up"
        from = "site/frames"
        to = "cloud/cli-check"
    """))
    return cfg


def test_check_forwards_nothing_then_run_and_status_json(tansu, tmp_path):  # noqa: F811
    cfg = _config(tmp_path, tansu.url)
    out = _bridge("check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stderr and "site/frames -> cloud/cli-check" in out.stderr, out.stderr
    assert "cli-check" not in tansu.topics(), "check created the target topic"
    assert not (tmp_path / "bridge.bridge-state" / "status.json").exists()

    proc = run_bridge_process(cfg)
    try:
        assert len(tansu.wait_count("cli-check", 50)) == 50
        out = _bridge("status", str(cfg), "--json")
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout)
        assert st["alive"] and st["site"] == "cli" and st["pid"] == proc.pid
        assert [(r["rule"], r["source"], r["target"]) for r in st["routes"]] == [("up", "site/frames",
                                                                                  "cloud/cli-check")]
    finally:
        assert stop_process(proc) == 0
