"""The worker's resident memory, step by step, with whatever PyTorch build runs it.

    PYTHONPATH=. /path/to/python -m stream.bench.worker_memory [--checkpoint builtin:digits]

Does what the inference worker does before serving (its imports, PyTorch on one
thread, the model loaded as the worker loads it, the full-frame reference
measured, the heap trimmed) and then steps 32 streams 50 times, printing the
RSS after each part. Why a command of its own: most of the worker's memory is
PyTorch itself, and which build is installed decides it (a CUDA build maps its
CUDA libraries even on a CPU; the CPU image installs the CPU build, see
deploy/docker/cpu.Dockerfile), so the figure is worth taking under each
interpreter. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import os


def rss_mib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="builtin:digits")
    parser.add_argument("--streams", type=int, default=32)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # as the worker sets it (worker.threads: 1)
    import torch

    import stream.infer.worker  # noqa: F401 - what the worker process imports first

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}: {rss_mib()} MiB after the worker's imports and torch")
    import numpy as np

    from adafocus.loading import load_online
    from adafocus.reference import measure_full_frame

    model = load_online(args.checkpoint, device="cpu", skip_mode="confidence", budget=0.3,
                        recount_costs=False)
    print(f"{rss_mib()} MiB with the model loaded")
    measure_full_frame(model, args.streams)
    ctypes.CDLL(None).malloc_trim(0)
    frames = np.random.default_rng(0).integers(0, 256, (args.streams, *model.frame_size, 3),
                                               dtype=np.uint8)
    ids = [f"s{i}" for i in range(args.streams)]
    for _ in range(50):
        model.step(frames, ids)
    print(f"{rss_mib()} MiB after the full-frame reference and 50 steps of {args.streams} "
          "streams")


if __name__ == "__main__":
    main()
