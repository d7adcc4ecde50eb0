"""The README's command-line example works as written (on a free port and a temporary
directory instead of 7400 and /tmp/fab)."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from service_helpers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]


def _readme_cli_block() -> list:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [ln for ln in block.strip().splitlines() if ln.strip()]


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
                    deadline = time.monotonic() + 30
                    while b"serving" not in log.read_bytes():
                        assert time.monotonic() < deadline, log.read_text()
                        time.sleep(0.05)
                else:
                    time.sleep(1.0)  # let the consumer join before the producer writes
                continue
            r = subprocess.run(cmd, shell=True, capture_output=True, env=env, timeout=60)
            assert r.returncode == 0, f"`{cmd}` failed: {r.stderr.decode()}"
            outputs[cmd] = r.stdout.decode()
        # The consumer following the topic printed the produced event.
        consumer_log = background[1][1]
        deadline = time.monotonic() + 30
        while b'"frame":1' not in consumer_log.read_bytes():
            assert time.monotonic() < deadline, consumer_log.read_text()
            time.sleep(0.05)
        describe = [out for cmd, out in outputs.items() if "group describe" in cmd]
        assert describe and re.search(r"1 live member", describe[0]), describe
    finally:
        for proc, _ in reversed(background):
            stop_process(proc, signal.SIGTERM)
