"""One probe: the real pipeline on N file streams for a bounded time, watched from
outside like any user would.

The supervisor runs in its own process (spawn), exactly as `adafocus-stream run`
runs it, from a config validated by `stream.config`; so every probe starts clean
(its own rings, sockets and metrics folder) and leaves nothing behind. The bench
process is the subscriber (`stream.client.Subscriber`, the one users get): it
stamps each label on receipt, waits until every stream has published, lets the
pipeline warm up, then measures over a fixed window: the labels themselves, the
CPU time of every pipeline process (/proc), the worker's batch sizes and step
times (/metrics) and, on CUDA, the GPU memory the worker holds (nvidia-smi).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from stream.bench import analysis, procstat
from stream.bench.media import Clip
from stream.bench.models import Variant
from stream.config import PipelineConfig, parse_config
from stream.metrics import MULTIPROC_ENV

STOP_GRACE_S = 20.0
GPU_SAMPLE_S = 1.0
TROUBLE = ("down", "ended", "stalled", "reconnecting")


@dataclass(frozen=True)
class ProbePlan:
    """How every probe of a run is shaped."""

    window_s: float
    warmup_s: float
    device: str
    max_batch: int
    ring_slots: int = 8
    start_timeout_s: float = 60.0  # plus 0.5 s per stream: all must publish by then


class ProbeFailed(RuntimeError):
    """The pipeline exited or its streams never all published: no measurement."""


def serve(config: PipelineConfig) -> None:
    """Process target: the supervisor, as `adafocus-stream run` runs it (warnings
    only on stderr). Its metrics go to its own run folder, never to a
    PROMETHEUS_MULTIPROC_DIR the caller may have set (the supervisor empties it)."""
    os.environ.pop(MULTIPROC_ENV, None)
    from stream.commands.run import setup_logging, supervise

    setup_logging("WARNING")
    sys.exit(supervise(config, "adafocus-stream bench: pipeline did not start"))


def stream_ids(count: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(count)]


def pipeline_config(variant: Variant, clips: list[Clip], streams: int, plan: ProbePlan,
                    publish_port: int, metrics_port: int) -> PipelineConfig:
    """N streams playing the clips (stream i plays clip i mod len(clips)) at their
    native rate, reading the newest frame (lossless off), as for live cameras."""
    skip: dict[str, Any] = {"mode": variant.skip_mode}
    if variant.budget is not None:
        skip["budget"] = variant.budget
    return parse_config({
        "model": {"checkpoint": variant.model_file, "device": plan.device, "skip": skip,
                  "max_batch": plan.max_batch},
        "streams": [{"id": sid, "uri": str(clips[i % len(clips)].path), "realtime": True}
                    for i, sid in enumerate(stream_ids(streams))],
        "ingest": {"ring_slots": plan.ring_slots},
        "publish": {"bind": f"tcp://127.0.0.1:{publish_port}", "sndhwm": 10_000},
        "metrics": {"bind": f"127.0.0.1:{metrics_port}"},
    })


class _Watch:
    """The subscriber side of one probe: label rows of the window, trouble seen."""

    def __init__(self, sub, process, clips: list[Clip]) -> None:
        self._sub, self._process = sub, process
        self._index = {sid: i for i, sid in enumerate(stream_ids(len(clips)))}
        self._clips = clips
        self.started: set[str] = set()
        self.rows: list[tuple] = []
        self.problems: list[str] = []
        self.recording = False

    @property
    def streams(self) -> int:
        return len(self._index)

    @property
    def all_started(self) -> bool:
        return len(self.started) == self.streams

    def pump(self, until: float, stop_when_started: bool = False) -> None:
        """Receive until monotonic time `until` (or every stream has published)."""
        while (now := time.monotonic()) < until:
            if not self._process.is_alive():
                raise ProbeFailed(f"the pipeline exited early (status "
                                   f"{self._process.exitcode}; its log is on stderr)")
            if stop_when_started and self.all_started:
                return
            message = self._sub.recv(timeout=min(0.05, until - now))
            if message is not None:
                self._take(message, time.time())

    def _take(self, message, t_recv: float) -> None:
        p = message.payload
        i = self._index.get(p["stream"])
        if i is None:
            return
        if message.kind == "event":
            if self.recording and p["state"] in TROUBLE:
                self.problems.append(f"{p['stream']} {p['state']} during the window: "
                                     f"{p['detail']}")
            return
        self.started.add(p["stream"])
        if not self.recording:
            return
        pts = p["pts"]
        self.rows.append((i, p["seq"], math.nan if pts is None else pts, p["t_capture"],
                          p["t_publish"], t_recv, p["class_id"], self._clips[i].truth_at(pts),
                          p["skipped"], p["gflops"], p["gflops_full"]))


def run_probe(variant: Variant, clips: list[Clip], streams: int, plan: ProbePlan,
              costs: analysis.FrameCosts) -> dict[str, Any]:
    """Serve `streams` streams with `variant` and measure; returns a plain-data
    record (the rules are in stream.bench.analysis)."""
    from stream.client import Subscriber

    publish_port, metrics_port = free_port(), free_port()
    config = pipeline_config(variant, clips, streams, plan, publish_port, metrics_port)
    stream_clips = [clips[i % len(clips)] for i in range(streams)]
    process = multiprocessing.get_context("spawn").Process(
        target=serve, args=(config,), name="adafocus-bench-pipeline")
    record: dict[str, Any] = {"variant": variant.name, "streams": streams,
                              "load_avg_1m": os.getloadavg()[0]}
    began = time.monotonic()
    with Subscriber(f"tcp://127.0.0.1:{publish_port}", events=True, rcvhwm=0) as sub:
        process.start()
        watch = _Watch(sub, process, stream_clips)
        try:
            _measure(watch, process, plan, f"http://127.0.0.1:{metrics_port}/metrics", record)
        except ProbeFailed as exc:
            record["error"] = str(exc)
        finally:
            stopping = time.monotonic()
            _stop(process)
            record["stop_s"] = time.monotonic() - stopping
    record["probe_s"] = time.monotonic() - began
    if "error" in record:
        record.update(ok=False, reasons=[record["error"]])
        return record
    data = analysis.as_arrays(watch.rows)
    record.update(analysis.realtime(data, streams, plan.window_s, clips[0].fps))
    if watch.problems:
        record.update(ok=False, reasons=record["reasons"] + watch.problems[:5])
    frames = len(watch.rows)
    cpu = record.pop("cpu_s")
    record.update(frames=frames, fps_processed=frames / plan.window_s,
                  latency_ms=analysis.latency_ms(data), **analysis.quality(data),
                  cpu_ms_per_frame=analysis.cpu_split_ms(cpu, frames, costs),
                  cpu_cores=sum(cpu.values()) / plan.window_s,
                  cpu_cores_by_role={k: v / plan.window_s for k, v in cpu.items()})
    return record


def _measure(watch: _Watch, process, plan: ProbePlan, metrics_url: str,
             record: dict[str, Any]) -> None:
    streams = watch.streams
    began = time.monotonic()
    watch.pump(began + plan.start_timeout_s + 0.5 * streams, stop_when_started=True)
    if not watch.all_started:
        raise ProbeFailed(f"only {len(watch.started)} of {streams} streams published before "
                           "the start timeout")
    record["startup_s"] = time.monotonic() - began
    watch.pump(time.monotonic() + plan.warmup_s)
    cpu0 = procstat.sample(process.pid)
    metrics0 = _scrape(metrics_url)
    end = time.monotonic() + plan.window_s
    watch.recording = True
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
