"""The inference worker's CPU cost per frame, alone: `InferenceWorker.tick` on real
frame rings with the real model, publishing on a real ZeroMQ socket.

    python -m stream.bench.worker_cost [--streams 16 64] [--ticks 300] [--out FILE]

Why apart from the pipeline bench: the worker's per-frame Python (ring reads,
the skip decision, results, messages, metrics) is what bounds a host once the
networks run on a few percent of the frames, and it is hard to see inside a
whole pipeline whose producers share the same cores. Here every stream's ring
gets the next frame of its own moving-digits scene before each tick (the
writes are not timed), and the main thread's CPU time (torch runs one thread,
as in the worker) over the ticks is divided by the frames processed.

Prints a table and writes the figures to a JSON file; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = {  # name -> (model file spec, skip mode)
    "adafocus_skip": ("builtin:digits", "confidence"),
    "adafocus": ("builtin:digits", "off"),
}


def measure(model_spec: str, skip_mode: str, streams: int, ticks: int, warmup: int = 20
            ) -> dict[str, Any]:
    """CPU ms per frame of `ticks` ticks over `streams` streams (after `warmup`)."""
    import zmq

    from adafocus.data.moving_digits import MovingDigitsScene
    from adafocus.loading import load_online
    from stream.bench.costs import inproc_pair
    from stream.infer.worker import InferenceWorker, WorkerStream
    from stream.metrics import PipelineMetrics
    from stream.ring import FrameRing, ring_name
    from stream.wire.push import send_nowait

    model = load_online(model_spec, device="cpu", skip_mode=skip_mode,
                        budget=0.3 if skip_mode != "off" else None)
    height, width = model.frame_size
    frames = _scene_frames(MovingDigitsScene, streams, warmup + ticks, height, width)
    context = zmq.Context()
    pull, push = inproc_pair(context)
    drained = threading.Event()
    drain = threading.Thread(target=_drain, args=(pull, drained), daemon=True)
    drain.start()
    rings = [FrameRing.create(ring_name("worker-cost", f"{uuid.uuid4().hex[:8]}"), 8, height,
                              width) for _ in range(streams)]
    worker = InferenceWorker(model, max(32, streams), lambda f: send_nowait(push, f),
                             PipelineMetrics())
    try:
        for i, ring in enumerate(rings):
            worker.add(WorkerStream(f"s{i:03d}", ring.name))
        spent = processed = 0.0
        for t in range(warmup + ticks):
            for i, ring in enumerate(rings):
                ring.write(frames[i % len(frames)][t], t, t / 25.0, time.time(), 0)
            started = time.thread_time()
            done = worker.tick()
            if t >= warmup:
                spent += time.thread_time() - started
                processed += done
    finally:
        worker.close()
        for ring in rings:
            ring.close()
            ring.unlink()
        drained.set()
        push.close(linger=0)
        drain.join(5)
        pull.close(linger=0)
        context.term()
    return {"model": model_spec, "skip_mode": skip_mode, "streams": streams, "ticks": ticks,
            "frames": int(processed), "cpu_ms_per_frame": 1e3 * spent / max(processed, 1)}


def _scene_frames(scene_cls, streams: int, count: int, height: int, width: int) -> list:
    """Frames of up to 8 distinct scenes (stream i plays scene i mod 8): rendering
    hundreds of scenes would take longer than the measurement."""
    scenes = [scene_cls(seed, height, width, split="test") for seed in range(min(streams, 8))]
    return [np.stack([scene.frame(t) for t in range(count)]) for scene in scenes]


def _drain(pull, done: threading.Event) -> None:
    import zmq

    while not done.is_set():
        if pull.poll(50):
            while True:
                try:
                    pull.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench-results/worker_cost.json"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # as the worker runs (worker.threads: 1)
    rows = []
    for name in args.variants:
        for streams in args.streams:
            row = {"variant": name, **measure(*VARIANTS[name], streams, args.ticks)}
            rows.append(row)
            print(f"{name:14s} {streams:4d} streams: {row['cpu_ms_per_frame']:.3f} ms CPU "
                  f"per frame ({row['frames']} frames)", flush=True)
    report = {"command": "python -m stream.bench.worker_cost " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                  for k, v in vars(args).items() if k != "out"),
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} cores, torch {torch.__version__}",
              "load_avg": list(os.getloadavg()), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
