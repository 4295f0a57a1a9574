"""`adafocus-stream bench` (also `python -m stream.bench`): how many live streams
the real pipeline serves in real time with AdaFocus, against the full-frame
network, on this machine.

For each source resolution (--sources, H.264 clips of the moving-digits scene),
first the decode ceiling (the same pipeline with no model: the physical limit),
then each preset (tiny, paper) and each variant (full_frame, adafocus,
adafocus_skip; see stream.bench.models): it searches the largest number of 25 fps
streams served in real time (stream.bench.search; each probe a fresh pipeline, or
with --ramp one pipeline per search whose streams are added and removed by config
reloads: stream.bench.probe), reports every capacity also as a share of the
ceiling, then at a fixed load (the full-frame network's capacity, rounded down to
a count the search visits, at least 1): latency from capture to subscriber
receipt, compute saved, accuracy against the scene's ground truth, CPU per frame
split into decode / ring / model / publish, and on CUDA the batch sizes and GPU
memory. Outputs: bench.json, bench.md (the README's Performance table),
cost_vs_streams.png and capacity.png in --out.

The paper preset has no trained weights here: its rows measure throughput only.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from adafocus.machine import cpu_name
from stream.exitcodes import EXIT_USAGE

MODES = {  # window_s, warmup_s, precision, budget_s (probe time), clips, growth
    "full": (10.0, 2.0, 0.25, 450.0, 8, 2),
    "quick": (4.0, 1.5, 0.5, 75.0, 4, 4),
}
DEFAULT_CHECKPOINT = "builtin:digits"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="the tiny preset only, short probes, a coarse search (under 2 "
                             "minutes on 2 CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help=f"the tiny-preset AdaFocus checkpoint (default {DEFAULT_CHECKPOINT}"
                             "); its NAME.compare.pt provides the trained full-frame baseline")
    parser.add_argument("--presets", nargs="+", choices=["tiny", "paper"],
                        help="default: tiny and paper (--quick: tiny)")
    parser.add_argument("--methods", nargs="+", default=["full_frame", "adafocus", "adafocus_skip"],
                        choices=["full_frame", "adafocus", "adafocus_skip"])
    parser.add_argument("--max-streams", type=int, default=None,
                        help="largest stream count tried (default 64 on CPU, 256 on CUDA)")
    parser.add_argument("--load", type=int, default=None,
                        help="stream count of the latency/accuracy comparison (default: the "
                             "full-frame capacity rounded down to a count every search visits)")
    parser.add_argument("--window", type=float, help="measured seconds per probe")
    parser.add_argument("--warmup", type=float, help="seconds before measuring")
    parser.add_argument("--budget", type=float, metavar="S",
                        help="seconds of probing in all (searches stop early, bounds reported)")
    parser.add_argument("--clips", type=int, help="distinct clips (stream i plays clip i mod N)")
    parser.add_argument("--clip-seconds", type=float, default=90.0,
                        help="clip length; must cover start-up + warm-up + window (default 90)")
    parser.add_argument("--ramp", action="store_true",
                        help="one pipeline per variant and source, streams added and removed "
                             "by config reloads (SIGHUP) instead of a new pipeline per probe")
    parser.add_argument("--sources", nargs="+", metavar="WxH",
                        help="resolutions of the H.264 sources, e.g. 128x128 640x360 1280x720 "
                             "(default: the model's frame size)")
    parser.add_argument("--max-batch", type=int, default=32, help="worker batch limit (config "
                        "model.max_batch)")
    parser.add_argument("--tick-interval", type=float, metavar="S",
                        help="worker.tick_interval_s of the pipelines (default: the config's "
                             "default), e.g. 0 to A/B the tick pacing")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the pipeline processes (repeatable), e.g. "
                             "OMP_WAIT_POLICY=PASSIVE to A/B a setting")
    parser.add_argument("--cache-dir", type=Path, default=default_cache(),
                        help="encoded clips and prepared models (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="output folder (default ./bench-results)")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "adafocus-stream" / "bench"


def log(text: str) -> None:
    print(f"bench: {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"adafocus-stream bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from adafocus import CheckpointError
    from stream.bench.models import prepare_variants

    presets = tuple(args.presets or (["tiny"] if args.quick else ["tiny", "paper"]))
    os.environ.update(settings["env"])  # inherited by every pipeline process (spawn)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = _machine(settings["device"])
    try:
        variants = [v for v in prepare_variants(args.cache_dir, args.checkpoint,
                                                presets, log)
                    if v.method in args.methods]
    except (CheckpointError, ValueError) as exc:
        hint = (" (not installed yet: train it, or pass --checkpoint PATH, e.g. a file made "
                "with adafocus.save_checkpoint)" if args.checkpoint == DEFAULT_CHECKPOINT else "")
        print(f"adafocus-stream bench: --checkpoint: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    report = _bench(args, settings, variants, machine)
    from stream.bench import report as out

    out.write_json(args.out / "bench.json", report)
    text = out.markdown(report)
    (args.out / "bench.md").write_text(text)
    pictures = out.plots(report, args.out)
    print("\n" + text)
    log(f"wrote {args.out / 'bench.json'}, {args.out / 'bench.md'}, "
        f"{', '.join(str(p) for p in pictures)}")
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from adafocus import resolve_device

    window, warmup, precision, budget, clips, growth = MODES["quick" if args.quick else "full"]
    device = str(resolve_device(args.device))  # ValueError naming the problem
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    settings = {
        "quick": args.quick, "device": device,
        "window_s": args.window or window, "warmup_s": args.warmup if args.warmup is not None
        else warmup, "precision": precision, "budget_s": args.budget or budget,
        "clips": args.clips or clips, "clip_seconds": args.clip_seconds,
        "max_streams": args.max_streams or (256 if device.startswith("cuda") else 64),
        "max_batch": args.max_batch, "load": args.load, "env": env, "growth": growth,
        "ramp": args.ramp, "sources": args.sources, "tick_interval_s": args.tick_interval,
    }
    for source in settings["sources"] or ():
        if re.fullmatch(r"[1-9]\d{1,4}x[1-9]\d{1,4}", source) is None or any(
                n % 2 for n in _size(source)):
            raise ValueError(f"--sources {source!r}: expected WIDTHxHEIGHT, both even")
    for key in ("max_streams", "max_batch", "clips"):
        if settings[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1")
    if settings["tick_interval_s"] is not None and not 0 <= settings["tick_interval_s"] <= 1:
        raise ValueError("--tick-interval must be within 0..1 s")
    if settings["load"] is not None and not 1 <= settings["load"] <= settings["max_streams"]:
        raise ValueError("--load must be within 1..--max-streams")
    needed = settings["warmup_s"] + settings["window_s"] + 5
    if settings["clip_seconds"] < needed:
        raise ValueError(f"--clip-seconds must be >= warm-up + window + 5 s ({needed:g})")
    return settings


def _bench(args: argparse.Namespace, settings: dict[str, Any], variants: list,
           machine: dict[str, Any]) -> dict[str, Any]:
    from stream.bench import costs as frame_costs
    from stream.bench import summary
    from stream.bench.media import scene_clips
    from stream.bench.models import ceiling_variant
    from stream.bench.probe import ProbePlan

    scene = next((v.frame_size for v in variants if v.preset == "tiny"), (128, 128))
    plan = ProbePlan(window_s=settings["window_s"], warmup_s=settings["warmup_s"],
                     device=settings["device"], max_batch=settings["max_batch"],
                     tick_interval_s=settings["tick_interval_s"])
    ceiling = ceiling_variant(variants[0].frame_size)
    settings["sources"] = settings["sources"] or [f"{scene[1]}x{scene[0]}"]
    costs = {size: frame_costs.measure(*size)
             for size in {v.frame_size for v in (ceiling, *variants)}}
    clips = {source: scene_clips(args.cache_dir, settings["clips"], settings["clip_seconds"],
                                 scene, log=log, video=_size(source))
             for source in settings["sources"]}  # encoded before the budget's clock starts
    runs = [(source, v) for source in settings["sources"] for v in (ceiling, *variants)]
    end = time.monotonic() + settings["budget_s"]
    rows: list[dict[str, Any]] = []
    loads: dict[str, int | None] = {}  # "preset @ source" -> the fixed load there
    for k, (source, variant) in enumerate(runs):
        deadline = time.monotonic() + max(0.0, end - time.monotonic()) / (len(runs) - k)
        log(f"{variant.name} on {source}: searching ({variant.describe()})")
        row = _search(variant, source, clips[source], plan, costs[variant.frame_size],
                      settings, deadline, loads, machine["cores"])
        rows.append(row)
    summary.add_ceiling_shares(rows)
    machine["load_avg_end"] = list(os.getloadavg())
    return {
        "command": _command_line(),
        "machine": machine,
        "settings": {**settings, "video": f"{scene[1]}x{scene[0]}"},
        "frame_costs_us": {f"{h}x{w}": {k: 1e6 * v for k, v in vars(c).items()}
                           for (h, w), c in costs.items()},
        "variants": rows,
        "presets": summary.summaries(rows, {p: n for p, n in loads.items() if n}),
        "notes": summary.notes(rows, {p: n for p, n in loads.items() if n}, settings),
    }


def _search(variant, source: str, clips, plan, costs, settings: dict[str, Any],
            deadline: float, loads: dict[str, int | None], cores: int) -> dict[str, Any]:
    """One variant's capacity on one source resolution: grow, then bisect, within
    `deadline`; in ramp mode all in one pipeline (stream.bench.probe.Session). The
    first variant of a preset on a source fixes the fixed load there, probed for
    every variant (in a fresh pipeline: the same frames for every variant)."""
    from contextlib import nullcontext

    from stream.bench import summary
    from stream.bench.probe import Session, run_probe
    from stream.bench.search import CapacitySearch

    session = Session(variant, clips, plan, costs) if settings["ramp"] else nullcontext()

    def probe(n: int, fresh: bool = False) -> dict[str, Any]:
        record = (run_probe(variant, clips, n, plan, costs) if fresh or not settings["ramp"]
                  else session.probe(n))
        log(_probe_line(record))
        return record

    with session:
        search = CapacitySearch(probe, max_streams=settings["max_streams"],
                                precision=settings["precision"], growth=settings["growth"])
        search.grow(deadline)
        search.refine(deadline)
    at_load, load = None, None
    if variant.method != summary.CEILING:
        key = f"{variant.preset} @ {source}"
        if loads.get(key) is None:
            loads[key] = settings["load"] or _load_for(search.streams, settings["growth"])
        load = loads[key]
        # A pipeline of its own, even when ramping: every variant then sees the same
        # frames (the clips from their start) at this load, so accuracies compare. Kept
        # apart from the search: a noisy pass above a failure must not move its bounds.
        at_load = (search.probes.get(load) if not settings["ramp"] else None) or probe(
            load, fresh=True)
    return summary.row(variant, source, search, at_load, load, cores)


def _size(text: str) -> tuple[int, int]:
    """"WIDTHxHEIGHT" -> (height, width)."""
    width, _, height = text.partition("x")
    return int(height), int(width)


def _command_line() -> str:
    """How this run was started, as a user would type it."""
    # the console script and `python -m stream.cli` both keep "bench" in argv[1:]
    module = Path(sys.argv[0]).name == "__main__.py"
    start = "python -m stream.bench" if module else "adafocus-stream"
    return " ".join([start, *sys.argv[1:]])


def _load_for(capacity: int, growth: int) -> int:
    """The largest count on the search's growth path (1, g, g^2, ...) within
    `capacity`, so every variant's search has probed it already; 1 at least."""
    load = 1
    while load * growth <= capacity:
        load *= growth
    return load


def _probe_line(r: dict[str, Any]) -> str:
    head = f"  {r['variant']:20s} {r['streams']:4d} streams: "
    if "error" in r:
        return head + f"FAILED ({r['error']})"
    lat = r["latency_ms"]
    return (head + ("real time    " if r["ok"] else "NOT real time")
            + f" | drop {100 * r['drop_rate']:.1f}% lag {r['lag_growth_s']:+.2f} s "
            f"src {100 * r['source_rate']:.0f}% | p50/p95 {lat['p50']:.0f}/{lat['p95']:.0f} ms"
            f" | {r['cpu_cores']:.2f} cores, {r['cpu_ms_per_frame'].get('total', 0):.2f} ms/frame"
            f" | batch {r['worker'].get('batch_mean', 0):.1f} | load {r['load_avg_1m']:.1f}"
            f" | {r['probe_s']:.0f} s")


def _machine(device: str) -> dict[str, Any]:
    import torch

    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    description = f"{cpu}, {cores} cores"
    gpu = _gpu_name(device) if device.startswith("cuda") else None
    if gpu:
        description += f", {gpu}"
    return {"description": description, "cpu": cpu, "cores": cores, "gpu": gpu,
            "python": platform.python_version(),
            "torch": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
            "load_avg_start": list(os.getloadavg())}


def _gpu_name(device: str) -> str:
    """From nvidia-smi, so the bench process holds no CUDA context of its own (it
    would count in the device-wide GPU memory figure)."""
    import subprocess

    index = device.partition(":")[2] or "0"
    try:
        return subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=name",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "CUDA device " + index
