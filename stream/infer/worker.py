"""The inference worker: one process that runs online AdaFocus on every stream.

Why one process for all streams: batching frames of many cameras into one
`OnlineAdaFocus.step` is what makes the accelerator (or the CPU's vector units)
pay off, and every stream's recurrent state lives in one place.

Why it never falls behind: each tick takes, per stream, one of the
`CATCH_UP_FRAMES` newest unread frames of its ring (the oldest of them,
`read_recent`), so when inference is slower than the cameras the older frames
are dropped and counted (`frames_dropped{reason="stale"}`) instead of queueing
up as lag, while a camera that delivers two frames at once (a delayed decoder
thread, a network burst) loses neither: the next tick, at once, takes the
second. Streams configured `lossless` (files, benchmarks) use `read_next` and
see every frame in order.

The supervisor talks to the worker over one duplex `multiprocessing` pipe
(`add` / `remove` / `stop` in, `ready` / `error` out) and watches a shared
heartbeat the worker stamps every loop, so a worker that is alive but stuck is
found and restarted.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np
import zmq

from adafocus.interface import CheckpointError, OnlineModel  # torch-free
from stream.config import ModelSection, WorkerSection
from stream.exitcodes import EXIT_MODEL_ERROR
from stream.infer import read_only
from stream.infer.counters import StreamCounters
from stream.infer.pacing import TickPacer, frame_gap
from stream.metrics import CpuMeter, PipelineMetrics
from stream.ring import FrameMeta, FrameRing
from stream.wire.messages import label_frames
from stream.wire.push import connect_push, send_nowait

log = logging.getLogger("adafocus.worker")

# Test-only fault injection: when this variable names a file and the file
# exists, the worker deletes it and then stops ticking (sleeps forever), exactly
# like an inference call stuck in a driver. Unset in every real deployment; the
# worker does not even look for the file then.
TEST_HANG_FILE_ENV = "ADAFOCUS_TEST_HANG_FILE"
FLUSH_S = 0.5  # how often per-stream counters are written (stream.infer.counters)
CATCH_UP_FRAMES = 2  # a live stream at most this many frames behind drops none


class Heartbeat(Protocol):
    """A shared double (`multiprocessing` Value or RawValue): monotonic seconds of
    the worker's last completed loop, 0.0 while the model is loading."""

    value: float


@dataclass(frozen=True)
class WorkerStream:
    """What the worker needs to know about one stream."""

    id: str
    ring_name: str
    lossless: bool = False


@dataclass
class _Stream:
    spec: WorkerStream
    ring: FrameRing
    counters: StreamCounters
    epoch: int | None = None
    pts: float | None = None  # of the last frame taken
    period: float = math.inf  # its frame interval, from the timestamps (stream.infer.pacing)


class InferenceWorker:
    """The tick loop's state: attached rings, the batch buffer, the model.

    Kept apart from the process plumbing (`run_worker`) so each tick is one plain
    method call: gather -> step -> publish. `full_frame_seconds(batch)` (when
    given) is what the full-frame network takes for a batch of that size on this
    device: each tick adds it up next to the real step time, so the dashboard
    shows the time saved as well as the GFLOPs."""

    def __init__(
        self,
        model: OnlineModel,
        max_batch: int,
        publish: Callable[[list[bytes]], bool],
        metrics: PipelineMetrics,
        full_frame_seconds: Callable[[int], float] | None = None,
        flush_s: float = FLUSH_S,
    ) -> None:
        height, width = model.frame_size
        self._model = model
        self._class_names: list[str] = list(model.class_names)
        self._publish = publish
        self._metrics = metrics
        self._full_frame_seconds = full_frame_seconds
        self._flush_s = flush_s
        self._flushed = -math.inf
        # Rings hold exactly model.frame_size frames, so frames are copied once,
        # straight from shared memory into the batch the model reads.
        self._batch = np.empty((max_batch, height, width, 3), dtype=np.uint8)
        self._streams: dict[str, _Stream] = {}
        self._next_start = 0  # round-robin start when there are more streams than max_batch
        # For the tick pacing (stream.infer.pacing): the shortest frame interval of
        # the live streams; of the last tick, the older frames it skipped to take the
        # newest and whether it left frames it could have taken.
        self.frame_period = math.inf
        self.dropped = 0
        self.backlog = False

    @property
    def stream_ids(self) -> list[str]:
        return list(self._streams)

    def add(self, spec: WorkerStream) -> None:
        if spec.id in self._streams:
            self.remove(spec.id)
        self._streams[spec.id] = _Stream(spec, FrameRing.attach(spec.ring_name),
                                         StreamCounters(self._metrics, spec.id))

    def remove(self, stream_id: str) -> None:
        state = self._streams.pop(stream_id, None)
        if state is None:
            return
        state.counters.flush()
        state.ring.close()
        self._model.drop(stream_id)
        self._update_frame_period()

    def close(self) -> None:
        for stream_id in list(self._streams):
            self.remove(stream_id)

    def flush(self) -> None:
        """Write every stream's counts added up since the last flush."""
        for state in self._streams.values():
            state.counters.flush()
        self._flushed = time.monotonic()
        self._update_frame_period()

    def _update_frame_period(self) -> None:
        """Recomputed from every stream now and then (a fast stream may have left or
        slowed down); between times a tick only ever lowers it."""
        self.frame_period = min((s.period for s in self._streams.values()), default=math.inf)

    def _gather(self) -> list[tuple[_Stream, FrameMeta]]:
        """Copy the due frame of each stream into the batch buffer, at most max_batch.

        With more streams than batch rows the start rotates, so every stream is
        served within a few ticks instead of the first ones starving the rest."""
        states = list(self._streams.values())
        if not states:
            return []
        start = self._next_start % len(states)
        order = states[start:] + states[:start]
        taken: list[tuple[_Stream, FrameMeta]] = []
        batch = self._batch
        backlog, dropped = False, 0
        for state in order:
            if len(taken) == len(batch):
                backlog = True  # some streams were not even looked at
                break
            row = batch[len(taken)]
            ring = state.ring
            lossless = state.spec.lossless
            meta = ring.read_next(row) if lossless else ring.read_recent(row, CATCH_UP_FRAMES)
            if meta is None:
                continue
            if meta.skipped:
                state.counters.stale.inc(meta.skipped)
                dropped += meta.skipped
            same_scene = meta.epoch == state.epoch
            if state.epoch is not None and not same_scene:
                # The producer reconnected: the new frames do not continue the old
                # scene, so the recurrent state must not carry over.
                self._model.reset(state.spec.id)
            backlog = backlog or ring.unread() > 0
            if not lossless:
                gap = frame_gap(meta.pts, state.pts if same_scene else None, 1 + meta.skipped)
                if gap < math.inf:
                    state.period = gap
                    self.frame_period = min(self.frame_period, gap)
            state.epoch, state.pts = meta.epoch, meta.pts
            taken.append((state, meta))
        self._next_start = start + max(1, len(taken))
        self.backlog, self.dropped = backlog, dropped
        return taken

    def tick(self) -> int:
        """Process at most one frame per stream; returns how many were processed."""
        taken = self._gather()
        if not taken:
            return 0
        t_take = time.time()
        ids = []
        for state, meta in taken:
            ids.append(state.spec.id)
            state.counters.wait.observe(max(0.0, t_take - meta.t_capture))
        started = time.perf_counter()
        results = self._model.step(self._batch[: len(taken)], ids)
        m = self._metrics
        m.inference.observe(time.perf_counter() - started)
        m.batch_size.observe(len(taken))
        if self._full_frame_seconds is not None:
            m.full_frame_seconds.inc(self._full_frame_seconds(len(taken)))
        publish, names = self._publish, self._class_names
        for sid, (state, meta), result in zip(ids, taken, results, strict=True):
            truth = names[meta.truth] if 0 <= meta.truth < len(names) else None
            sent = publish(label_frames(sid, meta.seq, meta.pts, meta.t_capture, result, truth))
            counts = state.counters
            counts.frames += 1
            counts.skipped += result.skipped
            counts.gflops += result.gflops
            counts.gflops_full += result.gflops_full
            if sent:
                counts.latency.observe(max(0.0, time.time() - meta.t_capture))
            else:
                counts.backpressure += 1
        if time.monotonic() - self._flushed >= self._flush_s:
            self.flush()
        return len(taken)


class _HangInjector:
    """See TEST_HANG_FILE_ENV. Consumes the flag file so a restarted worker runs normally."""

    def __init__(self, path: str | None) -> None:
        self._path = path

    def maybe_hang(self) -> None:
        if not self._path or not os.path.exists(self._path):
            return
        os.unlink(self._path)
        log.warning("test hook %s: worker now hangs on purpose", TEST_HANG_FILE_ENV)
        while True:  # deliberately ignores SIGTERM's flag: a real hang would too
            time.sleep(1.0)


def _apply(worker: InferenceWorker, command: tuple[str, Any]) -> bool:
    """Apply one control command; returns False on `stop`."""
    verb, arg = command
    if verb == "add":
        worker.add(arg)
    elif verb == "remove":
        worker.remove(arg)
    elif verb == "stop":
        return False
    else:
        log.error("worker: unknown control command %r ignored", verb)
    return True


def _load(model_section: ModelSection, worker_section: WorkerSection) -> OnlineModel:
    """The model of the config: a checkpoint or baseline file, or none (read only)."""
    if model_section.checkpoint.startswith(read_only.PREFIX):
        return read_only.ReadOnlyModel(read_only.parse_size(model_section.checkpoint))
    # PyTorch's CPU thread pool sized to the worker's share of the machine, set
    # before torch loads. Its default (every core, spinning OpenMP threads) fights
    # the producers for the same cores: measured by the bench on 2 cores, one tiny
    # step took 151 ms with the default and 4.7 ms with one thread; on an H100 host
    # the idle spinning burnt 4-12 cores for a GPU doing all the work.
    os.environ["OMP_NUM_THREADS"] = str(worker_section.threads)
    import torch

    torch.set_num_threads(worker_section.threads)

    # the model library and PyTorch, in the child only
    from adafocus.loading import load_online  # an AdaFocus checkpoint or a baseline file

    skip_on = model_section.skip_mode != "off"
    return load_online(
        model_section.checkpoint,
        device=model_section.device,
        skip_mode=model_section.skip_mode,
        budget=model_section.budget if skip_on else None,
        recount_costs=False,  # counting FLOPs would keep ~200 MB of modules loaded
    )


def _full_frame_clock(model: OnlineModel, max_batch: int) -> Callable[[int], float] | None:
    """The full-frame network's step time per batch size on the model's device (see
    adafocus.reference), for the time-saved metric; None for a model not on the
    library's runtime."""
    if isinstance(model, read_only.ReadOnlyModel):
        return None
    from adafocus.reference import measure_full_frame
    from adafocus.runtime import OnlineRunner

    if not isinstance(model, OnlineRunner):
        return None
    clock = measure_full_frame(model, max_batch)
    log.info("full-frame step on %s: %s", model.device, ", ".join(
        f"batch {b}: {1e3 * s:.1f} ms" for b, s in clock.measured.items()))
    # The measurement's activations (the full frame at max_batch) were freed into
    # glibc's heap, which keeps them resident unless asked to give them back.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    return clock


def run_worker(
    model_section: ModelSection,
    worker_section: WorkerSection,
    results_endpoint: str,
    results_hwm: int,
    streams: Sequence[WorkerStream],
    control: Connection,
    heartbeat: Heartbeat,
) -> None:
    """Process target (spawn context). Loads the model, reports `ready` (frame size,
    class names) or `error`, then ticks until `stop`, SIGTERM or the supervisor's
    end of the pipe closing (so it never outlives a killed supervisor). Results go
    to `results_endpoint` (the supervisor's internal PULL), at most `results_hwm`
    queued."""
    running = True

    def on_term(signum: int, frame: Any) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, on_term)

    try:
        model = _load(model_section, worker_section)
    except (CheckpointError, OSError, RuntimeError, ValueError) as exc:
        one_line = " ".join(str(exc).split())  # one clear line, however the library wrapped it
        control.send(("error", f"model.checkpoint: {one_line}"))
        raise SystemExit(EXIT_MODEL_ERROR) from None
    full_frame = _full_frame_clock(model, model_section.max_batch)
    control.send(
        (
            "ready",
            {
                "frame_size": tuple(model.frame_size),
                "class_names": list(model.class_names),
                "device": model.device,
            },
        )
    )

    context = zmq.Context()
    push = connect_push(context, results_endpoint, hwm=results_hwm)
    metrics = PipelineMetrics()
    cpu = CpuMeter(metrics, "worker")
    # The forwarder being behind drops a label (counted) rather than stalling inference.
    worker = InferenceWorker(model, model_section.max_batch,
                             functools.partial(send_nowait, push), metrics, full_frame)
    hang = _HangInjector(os.environ.get(TEST_HANG_FILE_ENV))
    pacer = TickPacer(worker_section.tick_interval_s)
    cpu_counted = time.monotonic()
    try:
        for spec in streams:
            worker.add(spec)
        while running:
            while running and control.poll():
                running = _apply(worker, control.recv())
            hang.maybe_hang()
            started = time.monotonic()
            processed = worker.tick()
            now = time.monotonic()
            heartbeat.value = now
            if now - cpu_counted >= FLUSH_S:
                cpu.update()
                cpu_counted = now
            metrics.worker_last_tick.set(time.time())
            pause = pacer.pause(worker.frame_period, now - started, processed, worker.dropped,
                                worker.backlog)
            if pause > 0:
                control.poll(pause)  # a command (stop, add) ends the wait at once
    except (EOFError, BrokenPipeError):
        pass  # the supervisor is gone; nothing left to work for
    finally:
        worker.close()
        cpu.update()
        push.close()
        context.term()
