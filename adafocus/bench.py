"""Step latency and throughput of OnlineAdaFocus beside the full-frame network.

    python -m adafocus.bench [--device cpu|cuda|auto] [--presets tiny paper]
                             [--streams 1 4 16] [--iters 20] [--paper-iters 3]
                             [--threads N] [--json PATH]

For every preset and stream count it times, in one run on the same uint8 frames:
``adafocus``: one OnlineAdaFocus.step over all streams (skipping off: every frame
pays glance + policy + patch + classifier, the worst case), and ``full_frame``: the
local network on the whole frame at full resolution (ResNet-50 at 224 for `paper`),
including the same upload and normalisation. On CUDA both run as CUDA graphs at
the batch's bucket (adafocus.graphs), as the service runs them, and
``adafocus_eager`` is the step without graphs (the launch-bound path). Weights are
random (speed does not depend on them). Medians are printed and written as JSON;
nothing is asserted. The GPU figure of README.md "Performance" comes from

    python -m adafocus.bench --device cuda --presets paper --streams 1 4 16 64 --paper-iters 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION
from adafocus.config import preset
from adafocus.flops import component_gflops
from adafocus.graphs import GraphRunner
from adafocus.models import AdaFocus
from adafocus.online import OnlineAdaFocus
from adafocus.runtime import resolve_device


def _median_seconds(fn, iters: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_preset(name: str, streams: list[int], iters: int, device: str) -> list[dict]:
    """Rows of {preset, streams, method, median_ms, frames_per_s, gflops_per_frame}."""
    config = preset(name, num_classes=10)
    torch.manual_seed(0)
    model = AdaFocus(config)
    cuda = device.startswith("cuda")
    online, eager = (OnlineAdaFocus(model, [str(i) for i in range(10)], IMAGENET_NORMALIZATION,
                                    component_gflops(config), device=device, cuda_graphs=graphs)
                     for graphs in (True, False))
    network = online.model
    graphs = GraphRunner(torch.device(device), enabled=True)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    rng = np.random.default_rng(0)
    rows = []
    for count in streams:
        frames = rng.integers(0, 256, (count, *config.frame_size, 3), dtype=np.uint8)
        ids = [f"s{i}" for i in range(count)]

        def full_frame(frames=frames):
            with torch.inference_mode(), online.autocast():
                x = online.to_input(torch.from_numpy(frames))
                return graphs.run("full_frame", network.local_features, x)

        timings = {
            "adafocus": _median_seconds(lambda frames=frames, ids=ids: online.step(frames, ids),
                                        iters, 2, sync),
            "full_frame": _median_seconds(full_frame, iters, 2, sync),
        }
        if cuda:
            timings["adafocus_eager"] = _median_seconds(
                lambda frames=frames, ids=ids: eager.step(frames, ids), iters, 2, sync)
        gflops = {"adafocus": online.costs.full_step, "adafocus_eager": online.costs.full_step,
                  "full_frame": online.costs.local_full}
        for method, seconds in timings.items():
            rows.append({"preset": name, "streams": count, "method": method,
                         "median_ms": seconds * 1e3, "frames_per_s": count / seconds,
                         "gflops_per_frame": gflops[method]})
            print(f"{name:6s} streams={count:3d} {method:10s} median {seconds * 1e3:9.2f} ms/step"
                  f"  {count / seconds:9.1f} frames/s  {gflops[method]:.4f} GFLOPs/frame",
                  flush=True)
        for sid in ids:
            online.drop(sid)
            eager.drop(sid)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adafocus.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"],
                        choices=["tiny", "paper"])
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--iters", type=int, default=20, help="timed steps for tiny")
    parser.add_argument("--paper-iters", type=int, default=3, help="timed steps for paper")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is steadier on a "
                             "CPU shared with other work")
    parser.add_argument("--json", type=Path,
                        default=Path(tempfile.gettempdir()) / "adafocus-bench.json")
    args = parser.parse_args(argv)

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.processor() or platform.machine()}, "
                     f"{torch.get_num_threads()} torch threads")
    print(f"adafocus.bench on {device} ({hardware}), torch {torch.__version__}", flush=True)
    rows = []
    for name in args.presets:
        iters = args.paper_iters if name == "paper" else args.iters
        rows += bench_preset(name, args.streams, iters, str(device))
    report = {"device": str(device), "hardware": hardware, "torch": torch.__version__,
              "gflops_convention": "GMACs per frame (FlopCounterMode FLOPs / 2)",
              "results": rows}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
