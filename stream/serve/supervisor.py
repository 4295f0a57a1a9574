"""The supervisor: owns every process, ring and socket of one pipeline.

It starts one producer process per stream and one inference worker (spawn
context), creates and unlinks each stream's frame ring, hosts the forwarder
(internal PULL -> public PUB) and the /metrics + /healthz server, and keeps all
of it running:

- a crashed child is restarted with exponential backoff, and a restart-rate cap
  stops a crash loop (each restart or give-up is one log line and one event);
- a worker that is alive but has not ticked for `worker.hang_timeout_s` (the
  shared heartbeat it stamps every loop) is killed and restarted: an inference
  call stuck in a driver must not silence every camera for good;
- SIGHUP re-reads the config and adds, removes or restarts only the streams that
  changed (the shard stays the one it started with: it may come from the command
  line or the environment, which a reload does not see);
- SIGINT/SIGTERM stop everything, publish a final `down` per stream, unlink the
  shared memory and return 0 within a few seconds.

Producer exit codes: 0 = source ended or stopped (not restarted), 3 = permanent
failure such as a file that is not a video (not restarted; the producer has
published `down`), anything else = crash (restarted).

Everything happens in the main thread's loop except forwarding (the
Forwarder's thread) and HTTP (MetricsServer's thread), which only share the
HealthState and the `_last_event` table with it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import zmq

from stream.config import ConfigError, PipelineConfig, StreamSection, load_config
from stream.exitcodes import EXIT_MODEL_ERROR, EXIT_OK, EXIT_PERMANENT
from stream.infer.worker import WorkerSettings, WorkerStream, run_worker
from stream.ingest.producer import ProducerSettings, StreamSpec, run_producer
from stream.ingest.uri import mask_uri
from stream.metrics import (
    MULTIPROC_ENV,
    WORKER_IDENTIFIER,
    PipelineMetrics,
    mark_process_dead,
    producer_identifier,
    reset_multiprocess_dir,
    use_process_identifier,
)
from stream.ring import FrameRing, ring_name, sweep_stale_segments
from stream.serve.forwarder import Forwarder
from stream.serve.http import HealthState, MetricsServer
from stream.serve.sharding import owns
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait

log = logging.getLogger("adafocus.supervisor")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

WORKER_STALL_DETAIL = "inference worker restarting"
STOP_DETAIL = "pipeline stopped"


class SupervisorError(RuntimeError):
    """A problem found while starting (a port in use, a model that does not load):
    reported as one line, exit status 2."""


@dataclass(frozen=True)
class RestartPolicy:
    """How crashed children come back. A child that ran `stable_s` resets its
    backoff; more than `max_restarts` within `window_s` is a crash loop and the
    child is given up (a stream goes `down`; a worker stops the pipeline)."""

    initial_s: float = 0.5
    max_s: float = 10.0
    max_restarts: int = 5
    window_s: float = 60.0
    stable_s: float = 30.0
    stop_grace_s: float = 2.0  # SIGTERM -> SIGKILL
    worker_start_timeout_s: float = 120.0


class Backoff:
    """Exponential restart delays with a rate cap, for one child."""

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._delay = policy.initial_s
        self._recent: collections.deque[float] = collections.deque()

    def next_delay(self, now: float, uptime: float) -> float | None:
        """Delay before the next restart, or None once the rate cap is reached."""
        p = self._policy
        if uptime >= p.stable_s:
            self._delay = p.initial_s
        while self._recent and now - self._recent[0] > p.window_s:
            self._recent.popleft()
        if len(self._recent) >= p.max_restarts:
            return None
        self._recent.append(now)
        delay, self._delay = self._delay, min(p.max_s, self._delay * 2)
        return delay

    @property
    def recent(self) -> int:
        return len(self._recent)


def die_with_parent() -> None:
    """Have the kernel SIGTERM this process when its parent dies (Linux
    PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no orphans behind."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _child_main(log_level: int, metrics_id: str, target: Callable[..., Any], *args: Any) -> None:
    """Entry of every child: log like the supervisor, name its metric files by
    role (before the target creates any metric), die with the supervisor, and
    leave Ctrl-C to it, which stops children in order with SIGTERM (a target may
    install its own SIGINT handler)."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT, stream=sys.stderr)
    use_process_identifier(metrics_id)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(*args)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass
class _Stream:
    section: StreamSection
    ring: FrameRing
    backoff: Backoff
    slot: int  # names the producer's metric files; unique among the running streams
    process: BaseProcess | None = None
    started: float = 0.0
    restart_at: float | None = None
    finished: bool = False  # ended, permanently down or given up: not restarted


@dataclass
class _Worker:
    process: BaseProcess
    control: Connection
    heartbeat: Any  # shared double, see stream.infer.worker.Heartbeat
    started: float
    ready_at: float | None = None


class Supervisor:
    """One pipeline. `run()` blocks until stopped and returns the exit status."""

    def __init__(
        self,
        config: PipelineConfig,
        config_path: str | Path | None = None,
        *,
        policy: RestartPolicy = RestartPolicy(),
    ) -> None:
        self._config = config
        self._config_path = None if config_path is None else Path(config_path)
        self._policy = policy
        self._mp = multiprocessing.get_context("spawn")
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._stop_requested = False
        self._reload_requested = False
        self._exit_status = 0
        self._streams: dict[str, _Stream] = {}
        self._worker: _Worker | None = None
        self._worker_backoff = Backoff(policy)
        self._worker_restart_at: float | None = None
        self._worker_stalled: set[str] = set()
        self._frame_size: tuple[int, int] | None = None
        # (state, detail) of the newest event per stream; written by the forwarder thread
        self._last_event: dict[str, tuple[str, str]] = {}
        self._run_dir: Path | None = None
        self._owned_metrics_env = False
        self._context: zmq.Context | None = None
        self._forwarder: Forwarder | None = None
        self._push: zmq.Socket | None = None
        self._http: MetricsServer | None = None
        self._health: HealthState | None = None
        self.metrics_url: str | None = None
        self.publish_endpoint: str | None = None

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        self._stop_requested = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def run(self) -> int:
        """Start, supervise until SIGINT/SIGTERM (or `request_stop`), stop.
        Raises SupervisorError for start-up problems."""
        self._install_signals()
        try:
            self._start()
            while not self._stop_requested:
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload()
                self._wait_for_something(0.1)
                self._supervise_worker()
                self._supervise_producers()
        finally:
            self._shutdown()
        return self._exit_status

    # ------------------------------------------------------------------ start

    def _wanted(self, config: PipelineConfig) -> dict[str, StreamSection]:
        """The streams this shard serves."""
        shard = config.shard
        return {s.id: s for s in config.streams if owns(s.id, shard.index, shard.count)}

    def _start(self) -> None:
        removed = sweep_stale_segments()
        if removed:
            log.info("removed %d frame ring(s) left by dead supervisors", len(removed))
        self._run_dir = Path(tempfile.mkdtemp(prefix=f"adafocus-{os.getpid()}-"))
        self._prepare_metrics_dir()
        metrics = PipelineMetrics()  # after the multiprocess dir is set
        wanted = self._wanted(self._config)
        self._health = HealthState(wanted, self._config.worker.hang_timeout_s)
        self._context = zmq.Context()
        internal = f"ipc://{self._run_dir / 'results.ipc'}"
        try:
            self._forwarder = Forwarder(
                self._context,
                internal,
                self._config.publish,
                on_event=self._on_event,
                metrics=metrics,
            ).start()
        except zmq.ZMQError as exc:
            bind = self._config.publish.bind
            raise SupervisorError(f"publish.bind: cannot bind {bind}: {exc}") from None
        self.publish_endpoint = self._forwarder.public_endpoint
        self._push = connect_push(self._context, internal)
        m = self._config.metrics
        try:
            self._http = MetricsServer(m.host, m.port, self._health).start()
        except OSError as exc:
            raise SupervisorError(
                f"metrics.bind: cannot serve on {m.bind}: {exc.strerror or exc}"
            ) from None
        self.metrics_url = self._http.url
        log.info(
            "results on %s, metrics on %s/metrics, health on %s/healthz",
            self.publish_endpoint,
            self.metrics_url,
            self.metrics_url,
        )
        self._start_worker()
        self._await_worker_ready()
        if self._stop_requested:
            return
        for section in wanted.values():
            self._add_stream(section)

    def _prepare_metrics_dir(self) -> None:
        """Use PROMETHEUS_MULTIPROC_DIR, or a folder of this run when it is unset,
        and empty it so an earlier run's values are never aggregated into this one.
        Children inherit the variable at spawn."""
        assert self._run_dir is not None
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            directory = str(self._run_dir / "metrics")
            os.environ[MULTIPROC_ENV] = directory
            self._owned_metrics_env = True
        reset_multiprocess_dir(directory)
        # client_python picks its value class when first imported; if that happened
        # before the variable was set, pick again so this process's metrics
        # (messages_published) go to the shared files too.
        from prometheus_client import values

        values.ValueClass = values.get_value_class()

    def _await_worker_ready(self) -> None:
        """Block until the first worker loaded the model: the rings' frame size is
        the model's, and a checkpoint that does not load is a start-up error."""
        deadline = time.monotonic() + self._policy.worker_start_timeout_s
        while self._frame_size is None:
            if self._stop_requested:
                return
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"inference worker did not load the model within "
                    f"{self._policy.worker_start_timeout_s:g} s"
                )
            self._wait_for_something(0.1)
            worker = self._worker
            assert worker is not None
            if self._frame_size is None and worker.process.exitcode is not None:
                self._read_worker_messages(worker)
                if self._frame_size is None:
                    raise SupervisorError(
                        "inference worker failed while loading the model "
                        f"({_exit_text(worker.process.exitcode)})"
                    )
            self._read_worker_messages(worker)

    # ------------------------------------------------------------------ events

    def _on_event(self, payload: dict[str, Any]) -> None:
        """Forwarder thread: every event.* message, ours included."""
        self._last_event[payload["stream"]] = (payload["state"], payload.get("detail", ""))
        assert self._health is not None
        self._health.on_event(payload)

    def _publish_event(self, stream_id: str, state: str, detail: str) -> None:
        """Our own events go through the internal PULL like everyone's, so the
        forwarder sees them (health state) and keeps one order per sender."""
        assert self._push is not None
        send_nowait(self._push, event_frames(stream_id, state, detail, time.time()))

    # ------------------------------------------------------------------ waiting

    def _wait_for_something(self, timeout: float) -> None:
        """Sleep until a child exits, the worker says something, or `timeout`."""
        handles: list[Any] = [s.process.sentinel for s in self._streams.values() if s.process]
        if self._worker is not None:
            handles += [self._worker.process.sentinel, self._worker.control]
        if handles:
            wait(handles, timeout)
        else:
            time.sleep(timeout)

    # ------------------------------------------------------------------ worker

    def _worker_streams(self) -> list[WorkerStream]:
        return [
            WorkerStream(sid, s.ring.name, s.section.lossless) for sid, s in self._streams.items()
        ]

    def _start_worker(self) -> None:
        model = self._config.model
        settings = WorkerSettings(
            checkpoint=model.checkpoint,
            results_endpoint=self._forwarder_endpoint(),
            device=model.device,
            skip_mode=model.skip_mode,
            budget=model.budget if model.skip_mode != "off" else None,
            max_batch=model.max_batch,
            tick_idle_s=self._config.worker.tick_idle_s,
            threads=self._config.worker.threads,
            sndhwm=self._config.publish.sndhwm,
        )
        ours, theirs = self._mp.Pipe(duplex=True)
        heartbeat = self._mp.RawValue(ctypes.c_double, 0.0)
        process = self._mp.Process(
            target=_child_main,
            args=(
                self._log_level,
                WORKER_IDENTIFIER,
                run_worker,
                settings,
                self._worker_streams(),
                theirs,
                heartbeat,
            ),
            name="adafocus-worker",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its end; ours sees EOF when it dies
        self._worker = _Worker(process, ours, heartbeat, time.monotonic())
        log.info("started inference worker (pid %d)", process.pid)

    def _forwarder_endpoint(self) -> str:
        assert self._forwarder is not None
        return self._forwarder.internal_endpoint

    def _read_worker_messages(self, worker: _Worker) -> None:
        try:
            while worker.control.poll():
                verb, arg = worker.control.recv()
                if verb == "ready":
                    self._worker_ready(worker, arg)
                elif verb == "error":
                    self._worker_error(arg)
        except (EOFError, OSError):
            pass  # it died; _supervise_worker sees the exit code

    def _worker_ready(self, worker: _Worker, info: dict[str, Any]) -> None:
        worker.ready_at = time.monotonic()
        size = (int(info["frame_size"][0]), int(info["frame_size"][1]))
        if self._frame_size is not None and size != self._frame_size:
            # The checkpoint file was replaced by one for another frame size: the
            # rings cannot hold its frames. Only a restart can apply it.
            log.error("the restarted worker's model wants %dx%d frames, the rings hold %dx%d; "
                      "stopping (restart the pipeline to change models)",
                      size[1], size[0], self._frame_size[1], self._frame_size[0])
            self._exit_status, self._stop_requested = 1, True
            return
        if self._frame_size is None:
            self._frame_size = size
            log.info(
                "model loaded on %s: %dx%d frames, %d classes",
                info["device"],
                size[1],
                size[0],
                len(info["class_names"]),
            )
        for sid in self._worker_stalled:  # marked stalled by our restart, unless news came since
            if self._last_event.get(sid) == ("stalled", WORKER_STALL_DETAIL):
                self._publish_event(sid, "up", "inference resumed")
        self._worker_stalled.clear()

    def _worker_error(self, message: str) -> None:
        if self._frame_size is None:
            raise SupervisorError(message)
        log.error("inference worker cannot load the model any more: %s; stopping", message)
        self._exit_status = 1
        self._stop_requested = True

    def _send_worker(self, command: tuple[str, Any]) -> None:
        """Tell a running worker about a stream change. A worker that is down gets
        the full list when it restarts, so a failed send needs no retry."""
        worker = self._worker
        if worker is None or worker.process.exitcode is not None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError included
            worker.control.send(command)

    def _supervise_worker(self) -> None:
        worker = self._worker
        now = time.monotonic()
        if worker is None:
            if self._worker_restart_at is not None and now >= self._worker_restart_at:
                self._worker_restart_at = None
                self._start_worker()
            return
        self._read_worker_messages(worker)
        beat = worker.heartbeat.value
        if beat > 0:
            assert self._health is not None
            self._health.worker_ticked(beat)
        code = worker.process.exitcode
        timeout = self._config.worker.hang_timeout_s
        if code == EXIT_MODEL_ERROR:
            self._stop_process(worker.process, WORKER_IDENTIFIER)
            self._worker = None
            if not self._stop_requested:  # _worker_error stops the pipeline, with the reason
                log.error("inference worker exited: %s; stopping", _exit_text(code))
                self._exit_status, self._stop_requested = 1, True
        elif code is not None:
            self._restart_worker(f"inference worker (pid {worker.process.pid}) died: "
                                 f"{_exit_text(code)}")
        elif worker.ready_at is not None:
            silent = now - max(beat, worker.ready_at)
            if silent > timeout:
                self._restart_worker(
                    f"inference worker (pid {worker.process.pid}) has not ticked for "
                    f"{silent:.1f} s (hang timeout {timeout:g} s)"
                )
        elif now - worker.started > self._policy.worker_start_timeout_s:
            self._restart_worker(
                f"inference worker (pid {worker.process.pid}) did not load the model within "
                f"{self._policy.worker_start_timeout_s:g} s"
            )

    def _restart_worker(self, why: str) -> None:
        """Stop the worker and schedule a new one (the loop keeps supervising the
        producers meanwhile). Its streams are reported `stalled` until it is back."""
        worker = self._worker
        assert worker is not None
        now = time.monotonic()
        delay = self._worker_backoff.next_delay(now, now - worker.started)
        self._stop_process(worker.process, WORKER_IDENTIFIER)
        worker.control.close()
        self._worker = None
        for sid in self._streams:
            self._publish_event(sid, "stalled", WORKER_STALL_DETAIL)
        self._worker_stalled = set(self._streams)
        if delay is None:
            log.error("%s; it failed %d times within %g s: stopping the pipeline", why,
                      self._worker_backoff.recent, self._policy.window_s)
            self._exit_status, self._stop_requested = 1, True
            return
        log.warning("%s; restarting it in %.1f s", why, delay)
        self._worker_restart_at = now + delay

    # ------------------------------------------------------------------ producers

    def _add_stream(self, section: StreamSection) -> None:
        assert self._frame_size is not None
        height, width = self._frame_size
        name = ring_name("adafocus", section.id)
        ring = FrameRing.create(name, self._config.ingest.ring_slots, height, width)
        stream = _Stream(section, ring, Backoff(self._policy), self._free_slot())
        self._streams[section.id] = stream
        self._spawn_producer(stream)
        self._send_worker(("add", WorkerStream(section.id, ring.name, section.lossless)))

    def _free_slot(self) -> int:
        """The lowest slot no running stream holds. Producers' metric files are
        named by slot, not by stream id: streams come and go with reloads, and
        per-id files would pile up just as per-PID files did; slots are reused,
        so the directory stays as large as the most streams ever run at once."""
        taken = {s.slot for s in self._streams.values()}
        return min(set(range(len(taken) + 1)) - taken)

    def _producer_settings(self) -> ProducerSettings:
        i = self._config.ingest
        return ProducerSettings(
            stall_timeout_s=i.stall_timeout_s,
            open_timeout_s=i.open_timeout_s,
            backoff_initial_s=i.backoff_initial_s,
            backoff_max_s=i.backoff_max_s,
            backoff_jitter=i.backoff_jitter,
        )

    def _spawn_producer(self, stream: _Stream) -> None:
        s = stream.section
        spec = StreamSpec(s.id, s.uri, {"transport": s.transport, "realtime": s.realtime})
        process = self._mp.Process(
            target=_child_main,
            args=(
                self._log_level,
                producer_identifier(stream.slot),
                run_producer,
                spec,
                stream.ring.name,
                self._forwarder_endpoint(),
                self._producer_settings(),
            ),
            name=f"adafocus-producer-{s.id}",
            daemon=True,
        )
        process.start()
        stream.process = process
        stream.started = time.monotonic()
        stream.restart_at = None
        log.info("started producer for stream %s (pid %d): %s", s.id, process.pid,
                 mask_uri(s.uri))

    def _supervise_producers(self) -> None:
        now = time.monotonic()
        for sid, stream in self._streams.items():
            process = stream.process
            if process is not None and process.exitcode is not None:
                self._producer_exited(sid, stream, now)
            if stream.restart_at is not None and now >= stream.restart_at:
                self._spawn_producer(stream)

    def _producer_exited(self, sid: str, stream: _Stream, now: float) -> None:
        process = stream.process
        assert process is not None and process.pid is not None
        code = process.exitcode
        process.join()
        mark_process_dead(producer_identifier(stream.slot))
        stream.process = None
        if code == EXIT_OK:
            stream.finished = True
            log.info("stream %s: producer finished (source ended)", sid)
            return
        if code == EXIT_PERMANENT:
            stream.finished = True
            log.warning("stream %s: source failed permanently; not restarting", sid)
            return
        delay = stream.backoff.next_delay(now, now - stream.started)
        what = f"producer (pid {process.pid}) {_exit_text(code)}"
        if delay is None:
            stream.finished = True
            detail = (f"{what}; {stream.backoff.recent} restarts within "
                      f"{self._policy.window_s:g} s, giving up until the config changes")
            log.error("stream %s: %s", sid, detail)
            self._publish_event(sid, "down", detail)
            return
        detail = f"{what}; restarting in {delay:.1f} s"
        log.warning("stream %s: %s", sid, detail)
        self._publish_event(sid, "reconnecting", detail)
        stream.restart_at = now + delay

    def _stop_producer(self, stream: _Stream) -> None:
        if stream.process is not None:
            self._stop_process(stream.process, producer_identifier(stream.slot))
            stream.process = None
        stream.restart_at = None

    def _stop_process(self, process: BaseProcess, metrics_id: str) -> None:
        """SIGTERM, then SIGKILL after the grace period; always reaps, so a
        replacement started after this never shares `metrics_id` with a live
        process (see stream.metrics.use_process_identifier)."""
        if process.exitcode is None:
            process.terminate()
            process.join(self._policy.stop_grace_s)
        if process.exitcode is None:
            log.warning("%s (pid %s) ignored SIGTERM; killing it", process.name, process.pid)
            process.kill()
        process.join()
        mark_process_dead(metrics_id)

    def _remove_stream(self, sid: str, detail: str) -> None:
        stream = self._streams.pop(sid)
        self._send_worker(("remove", sid))
        self._stop_producer(stream)
        self._publish_event(sid, "down", detail)
        stream.ring.close()
        stream.ring.unlink()

    # ------------------------------------------------------------------ reload

    def _reload(self) -> None:
        if self._config_path is None:
            log.warning("SIGHUP ignored: this pipeline was not started from a config file")
            return
        try:
            config = load_config(self._config_path)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            return
        for section in ("model", "publish", "metrics", "worker"):
            if getattr(config, section) != getattr(self._config, section):
                log.warning("reload: changes to %s take effect only after a restart", section)
        old_ingest = self._config.ingest
        # Only the streams and ingest settings are reloaded; the shard is the one
        # this process started with (see the module docstring).
        self._config = dataclasses.replace(
            self._config, streams=config.streams, ingest=config.ingest
        )
        wanted = self._wanted(self._config)
        removed = [sid for sid in self._streams if sid not in wanted]
        added = [s for sid, s in wanted.items() if sid not in self._streams]
        changed = [
            s for sid, s in wanted.items()
            if sid in self._streams and (s != self._streams[sid].section
                                         or config.ingest != old_ingest)
        ]
        assert self._health is not None
        for sid in removed:
            self._remove_stream(sid, "removed from the config")
        for section in changed:
            self._restart_changed(section, config.ingest.ring_slots != old_ingest.ring_slots)
        for section in added:
            self._add_stream(section)
        self._health.set_streams(wanted)
        log.info(
            "reload: %d stream(s) added, %d removed, %d restarted, %d unchanged",
            len(added), len(removed), len(changed),
            len(wanted) - len(added) - len(changed),
        )

    def _restart_changed(self, section: StreamSection, new_ring: bool) -> None:
        """A stream whose settings changed gets a new producer. Its ring stays
        unless the slot count changed, so its seq keeps increasing."""
        if new_ring:
            self._remove_stream(section.id, "restarting with a new configuration")
            self._add_stream(section)
            return
        stream = self._streams[section.id]
        self._stop_producer(stream)
        stream.section = section
        stream.finished = False
        stream.backoff = Backoff(self._policy)
        self._spawn_producer(stream)
        self._send_worker(("add", WorkerStream(section.id, stream.ring.name, section.lossless)))

    # ------------------------------------------------------------------ stop

    def _shutdown(self) -> None:
        """Children first (so nothing writes any more), then the final events, the
        sockets and the shared memory. Bounded: about stop_grace_s + 1 s."""
        started = time.monotonic()
        for stream in self._streams.values():
            if stream.process is not None and stream.process.exitcode is None:
                stream.process.terminate()
        if self._worker is not None:
            self._send_worker(("stop", None))
        for stream in self._streams.values():
            self._stop_producer(stream)
        if self._worker is not None:
            self._stop_process(self._worker.process, WORKER_IDENTIFIER)
            self._worker.control.close()
            self._worker = None
        if self._push is not None:
            for sid in self._streams:
                if self._last_event.get(sid, ("",))[0] not in ("down", "ended"):
                    self._publish_event(sid, "down", STOP_DETAIL)
            self._await_forwarded(deadline=time.monotonic() + 1.0)
            self._push.close(linger=0)
        if self._forwarder is not None:
            self._forwarder.close()
        if self._http is not None:
            self._http.close()
        for stream in self._streams.values():
            stream.ring.close()
            stream.ring.unlink()
        self._streams.clear()
        if self._context is not None:
            self._context.term()
        if self._owned_metrics_env:
            os.environ.pop(MULTIPROC_ENV, None)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        log.info("stopped in %.1f s", time.monotonic() - started)

    def _await_forwarded(self, deadline: float) -> None:
        """Give the forwarder the moment it needs to pass our final events on, and
        the PUB socket the moment it needs to put them on the wire."""
        while time.monotonic() < deadline:
            pending = [
                sid for sid in self._streams
                if self._last_event.get(sid, ("",))[0] not in ("down", "ended")
            ]
            if not pending:
                break
            time.sleep(0.02)
        time.sleep(0.2)
