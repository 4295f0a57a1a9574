"""The pipeline's Prometheus metrics (README.md, "Contracts: metrics").

Every process (supervisor, producers, worker) builds its own `PipelineMetrics`
after `PROMETHEUS_MULTIPROC_DIR` is set; client_python then writes the values to
per-process files that the supervisor's HTTP endpoint aggregates. The metrics
are created with `registry=None` so nothing hides in the global default registry.
Stream ids are labels; URIs never are (they may carry credentials).

Children name their files by role, not PID (`use_process_identifier`): see there.

Who writes what: producers the decode-side counters, the worker the inference
side, the supervisor `messages_published`, `process_restarts` and the state of
every stream (`stream_up`, `stream_state`), because only the supervisor knows a
stream for its whole life: a producer that exited (a 401, a 404) can no longer
say that its stream is down.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from stream.wire.messages import STATES

PREFIX = "adafocus_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_IDENTIFIER = "worker"

# Becomes part of file names (`counter_<identifier>.db`): no "/", no leading dot, and
# no "_", which client_python splits the names on when it reads them back.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,79}")

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.12, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class PipelineMetrics:
    """All metrics of the contract, one instance per process."""

    def __init__(self) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=None)

        self.frames_decoded = counter("frames_decoded", "Frames decoded by producers.", ("stream",))
        self.frames_dropped = counter(
            "frames_dropped",
            "Frames or labels lost (ring overwrite, stale, decode error, publish backpressure).",
            ("stream", "reason"),
        )
        self.frames_processed = counter(
            "frames_processed", "Frames the worker handled (run or skipped).", ("stream",)
        )
        self.frames_skipped = counter(
            "frames_skipped", "Frames not run through the model; label carried over.", ("stream",)
        )
        self.gflops = counter("gflops", "Compute actually spent, GFLOPs.", ("stream",))
        self.gflops_full = counter(
            "gflops_full", "Compute the full-frame network would have spent, GFLOPs.", ("stream",)
        )
        self.full_frame_seconds = counter(
            "full_frame_seconds",
            "What the full-frame network would have taken for the worker's batches (its step "
            "time per batch size, measured at start-up on the worker's device), seconds.",
        )
        self.cpu_seconds = counter(
            "cpu_seconds", "CPU time of the pipeline's processes (all threads), seconds.",
            ("role",),
        )
        self.reconnects = counter("reconnects", "Source reconnect attempts.", ("stream",))
        self.messages_published = counter("messages_published", "ZeroMQ messages sent.")
        self.process_restarts = counter(
            "process_restarts",
            "Child processes restarted after a crash or a hang (process: producer or worker).",
            ("process", "stream"),
        )
        self.stream_up = Gauge(
            PREFIX + "stream_up",
            "1 while the stream delivers frames to inference; 0 in every other state.",
            ("stream",),
            multiprocess_mode="livemax",
            registry=None,
        )
        self.stream_state = Gauge(
            PREFIX + "stream_state",
            "1 for the stream's current state (connecting, up, stalled, reconnecting, down, "
            "ended), 0 for the others.",
            ("stream", "state"),
            multiprocess_mode="livemax",
            registry=None,
        )
        self.ring_fill = Gauge(
            PREFIX + "ring_fill",
            "Unread fraction of the stream's frame ring (0..1).",
            ("stream",),
            multiprocess_mode="livemax",
            registry=None,
        )
        self.latency = Histogram(
            PREFIX + "latency_seconds",
            "Capture to publish.",
            ("stream",),
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.wait = Histogram(
            PREFIX + "wait_seconds",
            "Capture to the worker taking the frame.",
            ("stream",),
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.inference = Histogram(
            PREFIX + "inference_seconds",
            "One batched OnlineAdaFocus.step.",
            buckets=INFERENCE_BUCKETS,
            registry=None,
        )
        self.batch_size = Histogram(
            PREFIX + "batch_size", "Frames per batched step.", buckets=BATCH_BUCKETS, registry=None
        )
        # "max" (not livemax) keeps a dead worker's last tick, so its age keeps growing and alerts.
        self.worker_last_tick = Gauge(
            PREFIX + "worker_last_tick_timestamp_seconds",
            "Unix time of the worker's last loop tick.",
            multiprocess_mode="max",
            registry=None,
        )

    def set_stream_state(self, stream_id: str, state: str) -> None:
        """The supervisor's record of a stream's state (stream.serve.states)."""
        self.stream_up.labels(stream_id).set(1 if state == "up" else 0)
        for name in STATES:
            self.stream_state.labels(stream_id, name).set(1 if name == state else 0)


class CpuMeter:
    """Adds this process's CPU time to `cpu_seconds{role}` at every `update`: with the
    frame counters, the CPU a frame costs in decode (role producer) and in the worker,
    which GFLOPs do not show (README.md "Contracts: metrics")."""

    def __init__(self, metrics: PipelineMetrics, role: str) -> None:
        self._counter = metrics.cpu_seconds.labels(role)
        self._counted = 0.0  # from the process's start: imports and model loading included

    def update(self) -> None:
        now = time.process_time()
        self._counter.inc(now - self._counted)
        self._counted = now


def reset_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """Empty (or create) the multiprocess directory; the supervisor calls this at
    start so values of an earlier run are never aggregated into this one."""
    directory = Path(path)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


class _ConfiguredStreams(Collector):
    """Every process's metric files, without the series of streams that are no
    longer configured: their files keep the last values (a counter never
    disappears from a multiprocess file), and frozen series of removed streams
    would pile up in /metrics as streams come and go."""

    def __init__(self, path: str, configured: Callable[[], set[str]]) -> None:
        self._files = multiprocess.MultiProcessCollector(None, path=path)
        self._configured = configured

    def collect(self) -> Iterator[Metric]:
        wanted = self._configured()
        for metric in self._files.collect():
            metric.samples = [s for s in metric.samples
                              if not s.labels.get("stream") or s.labels["stream"] in wanted]
            yield metric


def scrape_registry(configured: Callable[[], set[str]] | None = None) -> CollectorRegistry:
    """A registry that aggregates every process's metric files, for one scrape of
    /metrics (client_python builds one per request in multiprocess mode), keeping
    only the streams in `configured()` when given. Empty until the run's metrics
    directory exists."""
    registry = CollectorRegistry()
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.path.isdir(path):
        if configured is None:
            multiprocess.MultiProcessCollector(registry, path=path)
        else:
            registry.register(_ConfiguredStreams(path, configured))
    return registry


def producer_identifier(slot: int) -> str:
    """The metrics identifier of the producer in `slot` (see `use_process_identifier`)."""
    return f"producer-{slot}"


def use_process_identifier(identifier: str) -> None:
    """Name this process's metric files `<type>_<identifier>.db` instead of by PID.

    Why: client_python keys multiprocess files by PID by default, so every
    restarted or reloaded child left a new set behind (~192 KiB per producer
    start) and the directory grew without bound. A child named by its role
    ("worker", "producer-<slot>") reopens its predecessor's files instead, and
    since a value starts from what its file holds, counters continue where they
    stopped: totals stay exact and never go backwards.

    client_python's one rule for identifiers: no two live processes may share
    one. The supervisor guarantees it by starting a replacement only after it
    has reaped the old process, and by giving each concurrent producer its own
    slot. The names are unique within one pipeline only, so each pipeline needs
    its own directory (it already did: the supervisor empties it at start).
    Call at the very start of the child, before any metric is created.
    """
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(
            f"metrics process identifier must match {_IDENTIFIER.pattern}, got {identifier!r}"
        )
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: identifier)


def mark_process_dead(identifier: int | str) -> None:
    """Tell client_python a child (by PID or by `use_process_identifier` name)
    exited, so its live gauges stop counting."""
    multiprocess.mark_process_dead(identifier)
