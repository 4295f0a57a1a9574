"""Memory of a whole running pipeline per stream, and whether many streams start,
run and stop cleanly.

    python -m stream.bench.memory [--streams 32 256] [--fps 25 5] [--out FILE]

For each (streams, fps) pair it runs the real pipeline (the supervisor as
`adafocus-stream run` runs it, with the shipped model, `synthetic://pattern`
cameras) and subscribes like any client. Once every stream has published and a
few seconds passed, it reads the proportional set size (PSS: shared pages split
between the processes that map them) and the RSS of every process of the tree
from /proc, by role (supervisor, worker, producers). Then it measures the labels
per stream and the CPU of every role over a window (real time: each stream
near its frame rate; `--tick-interval` to A/B the worker's tick pacing), sends
SIGTERM and checks the exit status, the time to stop, and that no frame ring and
no process is left.

PSS divides pages shared with ANY process, including other pipelines or PyTorch
processes on the machine that map the same libraries: on a shared machine the
figure is lower than on a dedicated one. The RSS per role is printed next to it.

Prints a table and writes the figures to a JSON file; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from stream.bench import procstat
from stream.bench.probe import free_port, serve
from stream.ring import NAME_PREFIX, SHM_DIR

SETTLE_S = 5.0
WINDOW_S = 10.0


def tree_memory(root: int) -> dict[str, dict[str, float]]:
    """MiB of PSS and RSS per role over the supervisor `root` and its children."""
    roles = procstat.sample(root).roles
    roles[root] = "supervisor"
    out: dict[str, dict[str, float]] = {}
    for pid, role in roles.items():
        values = _rollup(pid)
        if values is None:
            continue
        entry = out.setdefault(role, {"processes": 0, "pss_mib": 0.0, "rss_mib": 0.0})
        entry["processes"] += 1
        entry["pss_mib"] += values["Pss"] / 1024
        entry["rss_mib"] += values["Rss"] / 1024
    return out


def _rollup(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def measure(streams: int, fps: float, per_process: int, start_timeout_s: float,
            tick_interval_s: float | None = None) -> dict[str, Any]:
    from stream.client import Subscriber

    publish, metrics = free_port(), free_port()
    config = {
        "streams": [{"id": f"m-{i:03d}", "uri": f"synthetic://pattern?fps={fps:g}&seed={i}"}
                    for i in range(streams)],
        "model": {"device": "cpu", "max_batch": 64},
        "ingest": {"streams_per_process": per_process, "ring_slots": 4},
        "limits": {"max_streams": max(streams, 1)},
        "publish": {"bind": f"tcp://127.0.0.1:{publish}", "sndhwm": 100_000},
        "metrics": {"bind": f"127.0.0.1:{metrics}"},
    }
    if tick_interval_s is not None:
        config["worker"] = {"tick_interval_s": tick_interval_s}
    folder = tempfile.TemporaryDirectory(prefix="adafocus-memory-")
    path = Path(folder.name) / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(str(path),))
    record: dict[str, Any] = {"streams": streams, "fps": fps, "streams_per_process": per_process,
                              "load_avg_1m": os.getloadavg()[0]}
    with Subscriber(f"tcp://127.0.0.1:{publish}", rcvhwm=0) as sub:
        began = time.monotonic()
        process.start()
        seen: set[str] = set()
        while len(seen) < streams and time.monotonic() - began < start_timeout_s:
            message = sub.recv(timeout=0.2)
            if message is not None:
                seen.add(message.stream)
            if not process.is_alive():
                break
        record["startup_s"] = time.monotonic() - began
        record["publishing"] = len(seen)
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            sub.recv(timeout=0.2)
        record["memory"] = tree_memory(process.pid)
        counts: dict[str, int] = {}
        cpu_start = procstat.sample(process.pid)
        end = time.monotonic() + WINDOW_S
        while time.monotonic() < end:
            message = sub.recv(timeout=0.2)
            if message is not None:
                counts[message.stream] = counts.get(message.stream, 0) + 1
        cpu, _ = procstat.delta(cpu_start, procstat.sample(process.pid, cpu_start.roles))
        record["cpu_cores"] = {role: seconds / WINDOW_S for role, seconds in cpu.items()}
        rates = sorted(counts.get(f"m-{i:03d}", 0) / WINDOW_S for i in range(streams))
        record["labels_per_s"] = {"min": rates[0], "median": rates[len(rates) // 2],
                                  "expected": fps}
        stopping = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        process.join(60)
        record["stop_s"] = time.monotonic() - stopping
        record["exit_status"] = process.exitcode
        if process.is_alive():
            process.kill()
            process.join()
    folder.cleanup()
    record["rings_left"] = len(list(SHM_DIR.glob(f"{NAME_PREFIX}{process.pid}_*")))
    total = sum(role["pss_mib"] for role in record["memory"].values())
    record["pss_mib_total"] = total
    record["pss_mib_per_stream"] = total / streams
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--fps", type=float, nargs="+", default=[25.0, 5.0],
                        help="frame rate per run (paired with --streams)")
    parser.add_argument("--streams-per-process", type=int, default=16)
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--tick-interval", type=float, metavar="S",
                        help="worker.tick_interval_s (default: the config's default)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/memory.json"))
    args = parser.parse_args()
    if len(args.fps) != len(args.streams):
        parser.error("give one --fps per --streams value")
    rows = []
    for streams, fps in zip(args.streams, args.fps, strict=True):
        row = measure(streams, fps, args.streams_per_process, args.start_timeout,
                      args.tick_interval)
        rows.append(row)
        cores = ", ".join(f"{role} {n:.2f}" for role, n in sorted(row["cpu_cores"].items()))
        roles = ", ".join(f"{name} {v['processes']}x: PSS {v['pss_mib']:.0f} / RSS "
                          f"{v['rss_mib']:.0f} MiB" for name, v in sorted(row["memory"].items()))
        print(f"{streams} streams at {fps:g} fps: {row['publishing']} publishing after "
              f"{row['startup_s']:.0f} s; PSS {row['pss_mib_total']:.0f} MiB = "
              f"{row['pss_mib_per_stream']:.1f} MiB per stream ({roles}); labels/s per stream "
              f"min {row['labels_per_s']['min']:.1f} median {row['labels_per_s']['median']:.1f}; "
              f"CPU cores {cores};"
              f" stopped in {row['stop_s']:.1f} s, exit {row['exit_status']}, "
              f"{row['rings_left']} rings left (load {row['load_avg_1m']:.1f})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python -m stream.bench.memory " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if k != "out"), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
