"""An instrument-like producer at the site: pushes frames, obeys steering commands from the cloud.

Frames carry their exposure; a command ``{"cmd": "set_exposure", "exposure_ms": X}`` arriving on the
site topic ``commands`` (brought down from Kafka by the bridge) changes it for the following frames.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import mofka_py as mp


def main(url: str, max_seconds: float = 60.0) -> int:
    rng = np.random.default_rng(7)
    exposure_ms = 10.0
    with mp.connect(url) as fab:
        frames = fab.topic("frames")
        commands = fab.topic("commands")
        with frames.producer(linger_ms=1) as prod, commands.consumer(group="instrument") as cmds:
            deadline = time.monotonic() + max_seconds
            n = 0
            while time.monotonic() < deadline:
                img = rng.poisson(exposure_ms, size=(64, 64)).astype(np.uint16)
                kind = "calib" if n % 50 == 0 else "frame"
                prod.push({"frame": n, "kind": kind, "exposure_ms": exposure_ms, "mean": float(img.mean())},
                          data=img)
                n += 1
                ev = cmds.pull(timeout=0.01)
                if ev is not None:
                    cmd = ev.metadata
                    ev.ack()
                    if cmd.get("cmd") == "set_exposure":
                        print(f"instrument: steering from {cmd.get('site')} -> exposure {cmd['exposure_ms']} ms "
                              f"(after frame {n - 1})", flush=True)
                        exposure_ms = float(cmd["exposure_ms"])
                    elif cmd.get("cmd") == "stop":
                        print(f"instrument: stop command after {n} frames", flush=True)
                        return 0
    print("instrument: no stop command in time", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
