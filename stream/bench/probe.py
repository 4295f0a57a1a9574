"""Probes: the real pipeline on N file streams, watched from outside like any user
would watch it.

The supervisor runs in its own process (spawn), exactly as `adafocus-stream run`
runs it, from a config file validated by `stream.config`. The bench process is
the subscriber (`stream.client.Subscriber`, the one users get): it stamps each
label on receipt, waits until every stream has published, lets the pipeline warm
up, then measures over a fixed window: the labels themselves, the CPU time of
every pipeline process (/proc), the worker's batch sizes and step times
(/metrics) and, on CUDA, the GPU memory the worker holds (nvidia-smi).

A `Session` is one running pipeline. Without ramping every probe is a session of
its own (clean: its own rings, sockets and metrics folder, nothing left behind).
In ramp mode one session serves a whole capacity search: each probe rewrites the
config to the new stream count and reloads it (SIGHUP, the same path as any
reload), so a probe costs a warm-up and a window instead of a start of the
pipeline, its model and its device (about 30 s on a GPU).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stream.bench import analysis, procstat
from stream.bench.media import Clip
from stream.bench.models import Variant
from stream.bench.watch import ProbeFailed, Watch, stream_ids
from stream.metrics import MULTIPROC_ENV

STOP_GRACE_S = 20.0
GPU_SAMPLE_S = 1.0


@dataclass(frozen=True)
class ProbePlan:
    """How every probe of a run is shaped."""

    window_s: float
    warmup_s: float
    device: str
    max_batch: int
    ring_slots: int = 8
    tick_interval_s: float | None = None  # None: the config's default
    start_timeout_s: float = 60.0  # plus 0.5 s per stream: all must publish by then


def serve(config_path: str) -> None:
    """Process target: the supervisor, as `adafocus-stream run CONFIG` runs it
    (warnings only on stderr; SIGHUP reloads the file). Its metrics go to its own
    run folder, never to a PROMETHEUS_MULTIPROC_DIR the caller may have set (the
    supervisor empties it)."""
    os.environ.pop(MULTIPROC_ENV, None)
    from stream.commands.run import setup_logging, supervise
    from stream.config import load_config

    setup_logging("WARNING")
    sys.exit(supervise(load_config(config_path), "adafocus-stream bench: pipeline did not start",
                       config_path))


def pipeline_config(variant: Variant, clips: list[Clip], streams: int, plan: ProbePlan,
                    publish_port: int, metrics_port: int) -> dict[str, Any]:
    """N streams playing the clips (stream i plays clip i mod len(clips)) at their
    native rate, reading the newest frame (lossless off), as for live cameras."""
    skip: dict[str, Any] = {"mode": variant.skip_mode}
    if variant.budget is not None:
        skip["budget"] = variant.budget
    config: dict[str, Any] = {
        "model": {"checkpoint": variant.model_file, "device": plan.device, "skip": skip,
                  "max_batch": plan.max_batch},
        "streams": [{"id": sid, "uri": str(clips[i % len(clips)].path), "realtime": True}
                    for i, sid in enumerate(stream_ids(streams))],
        "ingest": {"ring_slots": plan.ring_slots},
        "limits": {"max_streams": max(streams, 256)},
        "publish": {"bind": f"tcp://127.0.0.1:{publish_port}", "sndhwm": 10_000},
        "metrics": {"bind": f"127.0.0.1:{metrics_port}"},
    }
    if plan.tick_interval_s is not None:
        config["worker"] = {"tick_interval_s": plan.tick_interval_s}
    return config


class Session:
    """One running pipeline serving `variant`, watched by a subscriber. `probe(n)`
    serves n streams (starting the pipeline, or reloading it to n) and measures."""

    def __init__(self, variant: Variant, clips: list[Clip], plan: ProbePlan,
                 costs: analysis.FrameCosts) -> None:
        from stream.client import Subscriber

        self._variant, self._clips, self._plan, self._costs = variant, clips, plan, costs
        self._ports = (free_port(), free_port())
        self._folder = tempfile.TemporaryDirectory(prefix="adafocus-bench-")
        self._config = Path(self._folder.name) / "pipeline.yaml"
        self._sub = Subscriber(f"tcp://127.0.0.1:{self._ports[0]}", events=True, rcvhwm=0)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._watch: Watch | None = None
        self._roles: dict[int, str] = {}

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self, streams: int) -> dict[str, Any]:
        """Serve `streams` streams and measure; a plain-data record (the rules are
        in stream.bench.analysis). A pipeline that failed is not probed again."""
        record: dict[str, Any] = {"variant": self._variant.name, "streams": streams,
                                  "load_avg_1m": os.getloadavg()[0]}
        began = time.monotonic()
        try:
            if self._process is not None and not self._process.is_alive():
                raise ProbeFailed(f"the pipeline exited (status {self._process.exitcode})")
            self._serve(streams)
            record["pipeline_pid"] = self._process.pid
            self._measure(record)
        except ProbeFailed as exc:
            record["error"] = str(exc)
        record["probe_s"] = time.monotonic() - began
        if "error" in record:
            record.update(ok=False, reasons=[record["error"]])
            return record
        return self._verdict(record, streams)

    def close(self) -> None:
        if self._process is not None:
            _stop(self._process)
        self._sub.close()
        self._folder.cleanup()

    def _serve(self, streams: int) -> None:
        """Write the config for `streams` and start the pipeline or reload it."""
        config = pipeline_config(self._variant, self._clips, streams, self._plan, *self._ports)
        self._config.write_text(yaml.safe_dump(config))
        clips = [self._clips[i % len(self._clips)] for i in range(streams)]
        if self._process is None:
            process = multiprocessing.get_context("spawn").Process(
                target=serve, args=(str(self._config),), name="adafocus-bench-pipeline")
            process.start()
            self._process = process
            self._watch = Watch(self._sub, process, clips)
        else:
            self._watch.resize(clips)
            os.kill(self._process.pid, signal.SIGHUP)

    def _measure(self, record: dict[str, Any]) -> None:
        watch, plan, process = self._watch, self._plan, self._process
        streams = watch.streams
        began = time.monotonic()
        watch.pump(began + plan.start_timeout_s + 0.5 * streams, stop_when_started=True)
        if not watch.all_started:
            raise ProbeFailed(f"only {len(watch.started)} of {streams} streams published "
                              "before the start timeout")
        record["startup_s"] = time.monotonic() - began
        watch.pump(time.monotonic() + plan.warmup_s)
        cpu0 = procstat.sample(process.pid, self._roles)
        self._roles = cpu0.roles
        metrics_url = f"http://127.0.0.1:{self._ports[1]}/metrics"
        metrics0 = _scrape(metrics_url)
        end = time.monotonic() + plan.window_s
        watch.start_window()
        gpu_peak = None
        while time.monotonic() < end:
            if plan.device.startswith("cuda"):
                worker = [pid for pid, role in cpu0.roles.items() if role == "worker"]
                used = _gpu_memory_mb(worker[0] if worker else None)
                if used is not None:
                    gpu_peak = max(used, gpu_peak or used)
            watch.pump(min(end, time.monotonic() + GPU_SAMPLE_S))
        watch.recording = False
        cpu1 = procstat.sample(process.pid, cpu0.roles)
        metrics1 = _scrape(metrics_url)
        record["cpu_s"], stable = procstat.delta(cpu0, cpu1)
        if not stable:
            watch.problems.append("a pipeline process started or exited during the window")
        record["worker"] = _worker_stats(metrics0, metrics1)
        if gpu_peak is not None:
            record["gpu_memory_mb"] = gpu_peak

    def _verdict(self, record: dict[str, Any], streams: int) -> dict[str, Any]:
        watch, plan = self._watch, self._plan
        data = analysis.as_arrays(watch.rows)
        record.update(analysis.realtime(data, streams, plan.window_s, self._clips[0].fps))
        if watch.problems:
            record.update(ok=False, reasons=record["reasons"] + watch.problems[:5])
        frames = len(watch.rows)
        cpu = record.pop("cpu_s")
        record.update(frames=frames, fps_processed=frames / plan.window_s,
                      latency_ms=analysis.latency_ms(data), **analysis.quality(data),
                      cpu_ms_per_frame=analysis.cpu_split_ms(cpu, frames, self._costs),
                      cpu_cores=sum(cpu.values()) / plan.window_s,
                      cpu_cores_by_role={k: v / plan.window_s for k, v in cpu.items()})
        return record


def run_probe(variant: Variant, clips: list[Clip], streams: int, plan: ProbePlan,
              costs: analysis.FrameCosts) -> dict[str, Any]:
    """One probe in a pipeline of its own, stopped afterwards."""
    with Session(variant, clips, plan, costs) as session:
        record = session.probe(streams)
    return record


# ----------------------------------------------------------------------------- helpers


def _stop(process) -> None:
    """SIGTERM (the supervisor's orderly stop, which unlinks its rings); SIGKILL if
    it hangs, then sweep the rings a killed supervisor leaves behind."""
    if process.is_alive():
        process.terminate()
    process.join(STOP_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join()
        from stream.ring import sweep_stale_segments

        sweep_stale_segments()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(url: str) -> Samples:
    """Every sample of the pipeline's /metrics, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _worker_stats(before: Samples, after: Samples) -> dict[str, Any]:
    """Batch sizes and step times of the window (histogram deltas)."""
    def diff(name: str, labels: tuple = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    steps = diff("adafocus_batch_size_count")
    stats: dict[str, Any] = {"steps": int(steps)}
    if steps > 0:
        stats["batch_mean"] = diff("adafocus_batch_size_sum") / steps
        buckets = sorted((float(dict(labels)["le"]), labels) for name, labels in after
                         if name == "adafocus_batch_size_bucket")
        stats["batch_max_le"] = next((le for le, labels in buckets
                                      if diff("adafocus_batch_size_bucket", labels) >= steps),
                                     None)
        stats["step_ms_mean"] = 1e3 * diff("adafocus_inference_seconds_sum") / max(
            1.0, diff("adafocus_inference_seconds_count"))
    return stats


def _gpu_memory_mb(worker_pid: int | None) -> float | None:
    """The worker's GPU memory (MiB) per nvidia-smi; the whole device's used memory
    when the worker's pid is not visible (containers), None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        apps = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True).stdout
        for line in apps.splitlines():
            pid, _, used = line.partition(",")
            if worker_pid is not None and pid.strip() == str(worker_pid):
                return float(used)
        total = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True).stdout
        return float(total.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
