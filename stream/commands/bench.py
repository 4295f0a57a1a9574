"""`adafocus-stream bench` (also `python -m stream.bench`): how many live streams
the real pipeline serves in real time with AdaFocus, against the full-frame
network, on this machine.

For each preset (tiny, paper) and each variant (full_frame, adafocus,
adafocus_skip; see stream.bench.models) it searches the largest number of 25 fps
streams served in real time (stream.bench.search, each probe a fresh pipeline:
stream.bench.probe), then reports at a fixed load (the full-frame network's
capacity, rounded down to a count the search visits, at least 1): latency from capture to
subscriber receipt, compute saved, accuracy against the scene's ground truth, CPU
per frame split into decode / ring / model / publish, and on CUDA the batch sizes
and GPU memory. Outputs: bench.json, bench.md (the README's Performance table),
cost_vs_streams.png and capacity.png in --out.

The paper preset has no trained weights here: its rows measure throughput only.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument("--max-batch", type=int, default=32, help="worker batch limit (config "
                        "model.max_batch)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the pipeline processes (repeatable), e.g. "
                             "OMP_WAIT_POLICY=PASSIVE to A/B a setting")
    parser.add_argument("--cache-dir", type=Path, default=_default_cache(),
                        help="encoded clips and prepared models (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="output folder (default ./bench-results)")


def _default_cache() -> Path:
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
    }
    for key in ("max_streams", "max_batch", "clips"):
        if settings[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1")
    if settings["load"] is not None and not 1 <= settings["load"] <= settings["max_streams"]:
        raise ValueError("--load must be within 1..--max-streams")
    needed = settings["warmup_s"] + settings["window_s"] + 5
    if settings["clip_seconds"] < needed:
        raise ValueError(f"--clip-seconds must be >= warm-up + window + 5 s ({needed:g})")
    return settings


def _bench(args: argparse.Namespace, settings: dict[str, Any], variants: list,
           machine: dict[str, Any]) -> dict[str, Any]:
    from stream.bench import costs as frame_costs
    from stream.bench.media import scene_clips
    from stream.bench.probe import ProbePlan, run_probe
    from stream.bench.search import CapacitySearch

    video = next((v.frame_size for v in variants if v.preset == "tiny"), (128, 128))
    clips = scene_clips(args.cache_dir, settings["clips"], settings["clip_seconds"], video,
                        log=log)
    plan = ProbePlan(window_s=settings["window_s"], warmup_s=settings["warmup_s"],
                     device=settings["device"], max_batch=settings["max_batch"])
    costs = {size: frame_costs.measure(*size) for size in {v.frame_size for v in variants}}
    end = time.monotonic() + settings["budget_s"]

    def share(left: int) -> float:
        """Deadline giving this step an equal part of the time left."""
        return time.monotonic() + max(0.0, end - time.monotonic()) / left

    def prober(variant):
        def probe(n: int) -> dict[str, Any]:
            record = run_probe(variant, clips, n, plan, costs[variant.frame_size])
            log(_probe_line(record))
            return record
        return probe

    # Pass 1: every variant's coarse capacity, and the fixed-load probe.
    searches, at_load, loads = [], [], {}
    for k, variant in enumerate(variants):
        log(f"{variant.name}: searching ({'trained' if variant.trained else 'untrained'} "
            f"weights, skip {variant.skip_mode}"
            + (f" at budget {variant.budget:g}" if variant.budget is not None else "") + ")")
        search = CapacitySearch(prober(variant), max_streams=settings["max_streams"],
                                precision=settings["precision"], growth=settings["growth"])
        search.grow(share(len(variants) - k))
        if variant.preset not in loads:  # the first variant of a preset fixes its load
            loads[variant.preset] = settings["load"] or _load_for(search.streams,
                                                                  settings["growth"])
        load = loads[variant.preset]
        # kept apart from the search: a noisy pass above a failure must not move its bounds
        at_load.append(search.probes.get(load) or prober(variant)(load))
        searches.append(search)
    # Pass 2: bisect (or go on growing) with what time is left.
    pending = [(v, s) for v, s in zip(variants, searches, strict=True) if not s.exact]
    for k, (variant, search) in enumerate(pending):
        log(f"{variant.name}: refining above {search.streams}"
            + (f", below {search.upper}" if search.upper is not None else ""))
        search.refine(share(len(pending) - k))
    rows = [_row(variant, search, probe, loads[variant.preset], machine["cores"])
            for variant, search, probe in zip(variants, searches, at_load, strict=True)]
    machine["load_avg_end"] = list(os.getloadavg())
    return {
        "command": _command_line(),
        "machine": machine,
        "settings": {**settings, "video": f"{video[1]}x{video[0]}",
                     "clip_files": [str(c.path) for c in clips]},
        "frame_costs_us": {f"{h}x{w}": {k: 1e6 * v for k, v in vars(c).items()}
                           for (h, w), c in costs.items()},
        "variants": rows,
        "presets": _summaries(rows, loads),
        "notes": _notes(rows, loads, settings),
    }


def _row(variant, search, at_load: dict[str, Any], load: int, cores: int) -> dict[str, Any]:
    probes = [search.probes[n] for n in sorted(search.probes)]
    return {
        "name": variant.name, "preset": variant.preset, "method": variant.method,
        "trained": variant.trained, "model_file": variant.model_file,
        "skip_mode": variant.skip_mode, "budget": variant.budget,
        "frame_size": list(variant.frame_size), "gflops_full": variant.gflops_full,
        "val_accuracy_training": variant.val_accuracy,
        "capacity": search.streams, "capacity_upper": search.upper,
        "capacity_exact": search.exact, "load": load, "at_load": at_load,
        "limit": _limit(search, cores),
        "probes": probes + ([] if any(p is at_load for p in probes) else [at_load]),
    }


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


def _limit(search, cores: int) -> dict[str, Any] | None:
    """Why the first failing count failed, with where the CPU went there."""
    if search.upper is None:
        return None
    r = search.probes[search.upper]
    limit = {"streams": search.upper, "reasons": r["reasons"]}
    if "cpu_cores" in r:
        split = {k: v for k, v in r["cpu_ms_per_frame"].items() if k != "total"}
        limit.update(cpu_cores=r["cpu_cores"], cores=cores, cpu_ms_per_frame=split,
                     largest=max(split, key=split.get) if split else None)
    return limit


def _summaries(rows: list[dict[str, Any]], loads: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for preset, load in loads.items():
        by = {r["method"]: r for r in rows if r["preset"] == preset}
        summary: dict[str, Any] = {"load": load}
        full, skip = by.get("full_frame"), by.get("adafocus_skip")
        if full and skip:
            summary["full_frame_streams"] = full["capacity"]
            summary["adafocus_skip_streams"] = skip["capacity"]
            if full["capacity"] > 0:
                summary["skip_vs_full_streams"] = skip["capacity"] / full["capacity"]
            a, b = skip["at_load"].get("accuracy"), full["at_load"].get("accuracy")
            if skip["trained"] and full["trained"] and a is not None and b is not None:
                summary["accuracy_gap_points"] = 100 * (a - b)
        out[preset] = summary
    return out


def _notes(rows: list[dict[str, Any]], loads: dict[str, int], s: dict[str, Any]) -> list[str]:
    notes = ["Fixed load for latency, compute saved, accuracy and the CPU split: "
             + ", ".join(f"{p}: {n} stream(s)" for p, n in loads.items())
             + " (the full-frame capacity rounded down to a power of the search's growth "
             "factor, at least 1).",
             "CPU per frame: per-process CPU time (/proc) over the window divided by the "
             "labels published; decode = producer processes minus the ring write, model = "
             "worker process minus ring read and message encoding, publish = encoding + the "
             "supervisor's forwarder; ring and encoding costs are timed in isolation."]
    offline = [f"`{r['name']}` {100 * r['val_accuracy_training']:.1f}%" for r in rows
               if r["val_accuracy_training"] is not None]
    if offline:
        notes.append("For reference, every-frame validation accuracy recorded by training "
                     "(offline, no skipping): " + ", ".join(offline) + ".")
    if any(not r["trained"] for r in rows):
        notes.append("Untrained rows run random weights (the paper preset cannot be "
                     "downloaded here): their throughput is real, their accuracy meaningless.")
    for r in rows:
        if r["limit"] and r["method"] == "adafocus_skip":
            lim = r["limit"]
            where = "" if "cpu_cores" not in lim else (
                f"; the pipeline used {lim['cpu_cores']:.2f} of {lim['cores']} cores, most per "
                f"frame in {lim['largest']} "
                f"({lim['cpu_ms_per_frame'][lim['largest']]:.2f} ms)")
            notes.append(f"`{r['name']}` at {lim['streams']} streams: "
                         f"{'; '.join(lim['reasons'])}{where}.")
        if not r["capacity_exact"]:
            notes.append(f"`{r['name']}`: search cut short by --budget/--max-streams "
                         f"(capacity {r['capacity']}, first failure "
                         f"{r['capacity_upper'] or 'not reached'}).")
    if s["env"]:
        notes.append("Pipeline environment: "
                     + ", ".join(f"{k}={v}" for k, v in s["env"].items()) + ".")
    return notes


def _machine(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
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
