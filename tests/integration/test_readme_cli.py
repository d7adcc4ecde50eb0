"""The README's command-line example works as written (on a free port and a temporary
directory instead of 7400 and /tmp/fab)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import mofka_py as mp
from waiting import wait_until

from service_helpers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]


def _readme_cli_block() -> list:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln for ln in block.strip().splitlines() if ln.strip()]


def _joined(fab, topic: str, group: str) -> bool:
    try:
        return bool(fab.topic(topic).describe_group(group)["members"])
    except mp.TopicNotFound:
        return False


def test_readme_command_line_example(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOFKA_PY_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    background = []
    outputs = {}
    try:
        for line in _readme_cli_block():
            cmd = line.split("  #", 1)[0].strip().replace("7400", str(port)).replace("/tmp/fab", str(tmp_path / "fab"))
            if cmd.startswith("export "):
                key, value = cmd[len("export "):].split("=", 1)
                env[key] = value
                continue
            if cmd.endswith("&"):
                argv = shlex.split(cmd[:-1])
                log = tmp_path / f"bg{len(background)}.out"
                with open(log, "wb") as out:
                    background.append((subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env), log))
                if argv[1] == "serve":
                    wait_until(lambda log=log: b"serving" in log.read_bytes(), 30, f"the service to start: {log}")
                elif argv[1] == "consume" and "--group" in argv:
                    # The consumer joins its group before the producer writes.
                    topic, group = argv[2], argv[argv.index("--group") + 1]
                    with mp.connect(env["MOFKA_PY_URL"]) as fab:
                        wait_until(lambda topic=topic, group=group: _joined(fab, topic, group), 30, f"a member in group {group} of {topic}")
                continue
            r = subprocess.run(cmd, shell=True, capture_output=True, env=env, timeout=60)
            assert r.returncode == 0, f"`{cmd}` failed: {r.stderr.decode()}"
            outputs[cmd] = r.stdout.decode()
        # The consumer following the topic printed the produced event.
        consumer_log = background[1][1]
        wait_until(lambda: b'"frame":1' in consumer_log.read_bytes(), 30, f"the event printed in {consumer_log}")
        describe = [out for cmd, out in outputs.items() if "group describe" in cmd]
        assert describe and re.search(r"1 live member", describe[0]), describe
    finally:
        for proc, _ in reversed(background):
            stop_process(proc, signal.SIGTERM)
