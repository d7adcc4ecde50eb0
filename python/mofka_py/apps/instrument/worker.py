"""An analysis worker: ``python -m mofka_py.apps.instrument.worker --site URL --name NAME``.

A member of the consumer group ``analysis`` on the site's ``frames`` topic. For each frame: the
quality model predicts its quality from cheap features (before anything else, as it would at the
edge), the peak finder measures it, the model learns from the measurement, and a result (peak
list, background, measured and predicted quality, the frame's settings and timestamps) goes to
``results``. The frame is acknowledged only once its result is stored, so a crash can repeat a
result (the group's at-least-once window) but never lose one. Publishes a heartbeat on
``__health``; iteration ends when the site marks ``frames`` complete and the group read it all.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List

GROUP = "analysis"


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m mofka_py.apps.instrument.worker")
    p.add_argument("--site", required=True)
    p.add_argument("--name", required=True, help="member id in the group and node name in health events")
    p.add_argument("--ready", help="file to create once the worker is in the group")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np

    import mofka_py as mp
    from mofka_py.services import Heartbeat

    from .analysis import QualityModel, features, find_peaks

    model = QualityModel(rehearsal=True, seed=args.seed)
    baseline = QualityModel(rehearsal=False, seed=args.seed)
    done = 0
    t_busy = 0.0
    with mp.connect(args.site) as fab:
        frames, results = fab.topic("frames"), fab.topic("results")
        with Heartbeat(fab, args.name, kind="worker", group=GROUP, interval=0.5,
                       info=lambda: {"analysed": done, "busy": round(t_busy, 2)}), \
                frames.consumer(group=GROUP, member_id=args.name, prefetch_bytes=16 << 20,
                                auto_commit_ms=500) as cons, \
                results.producer(linger_ms=0.0) as prod:
            if args.ready:
                Path(args.ready).write_text(cons.member_id or args.name)
            for ev in cons:
                t_recv = time.time()
                meta = ev.metadata
                img = np.frombuffer(ev.data, dtype=np.uint16).reshape(meta["shape"])
                x = features(img, meta["exposure"])
                pred, pred0 = model.predict(x), baseline.predict(x)
                peaks, count, bg = find_peaks(img)
                model.learn(x, count)
                baseline.learn(x, count)
                t_done = time.time()
                truth = meta.get("truth", {})
                res = {"frame": meta["frame"], "module": meta["module"], "worker": args.name,
                       "partition": ev.partition, "offset": ev.offset, "t_acq": meta["t_acq"],
                       "t_site": ev.timestamp_us * 1e-6, "t_recv": t_recv,
                       "t_done": t_done, "exposure": meta["exposure"], "position": meta["position"],
                       "cmd_seq": meta["cmd_seq"], "background": round(bg, 3), "n_peaks": count,
                       "quality_pred": round(pred, 2), "quality_pred_plain": round(pred0, 2),
                       "quality_true": truth.get("quality"), "flux": truth.get("flux"), "model_seen": model.seen,
                       "peaks": peaks}
                # Acknowledge only what has a stored result: a crash may repeat a result, never lose one.
                prod.push(res).result(timeout=60)
                ev.ack()
                done += 1
                t_busy += t_done - t_recv
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
