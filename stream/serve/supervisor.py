"""The supervisor: owns every process, ring and socket of one pipeline.

It is an orchestrator of child handles (stream.serve.worker_handle, and the
producer pool stream.serve.producer_pool), each owning its processes' start,
restart policy and stop, plus the public endpoints (the forwarder's PUB socket, /metrics,
/healthz, /livez). Its one loop:

- waits for news (a child exited, the worker spoke) or 0.1 s;
- applies a reload (SIGHUP, or a change made through the stream API): re-reads
  the config and the API's state file merged over it (stream.serve.api.overlay)
  and adds, removes or restarts only the streams that changed, once admission
  (stream.serve.admission) let the new stream list in (the shard stays the one it
  started with: it may come from the command line or the environment, which a
  reload does not see);
- polls the worker handle (restarts after a crash or a hang) and the producer
  pool (restarts, give-ups);
- on SIGINT/SIGTERM leaves the loop and stops everything: children first, a
  final `down` per stream, sockets, shared memory; exit 0 within a few seconds.

Stream states are not the supervisor's to write: it reports what it knows (a
producer died, the worker is gone or back, a stream was added or removed) to
the one owner of every stream's state, stream.serve.states, which lives in the
forwarder's thread. Start-up stops at the first SIGTERM, and shutdown has one
deadline for all children however many there are.

Signal handlers only set flags; everything happens in the loop's thread except
forwarding (the Forwarder's thread) and HTTP (HttpService's thread), which
reads the running streams through `stream_sections` and `ring_name` and asks for
reloads through `reload_and_wait`.
"""

from __future__ import annotations

import logging
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from stream.config import ConfigError, PipelineConfig, StreamSection
from stream.infer.worker import WorkerStream
from stream.metrics import CpuMeter, PipelineMetrics
from stream.ring import FrameRing, ring_name, sweep_stale_segments
from stream.serve.admission import AdmissionError, admit, processes_for
from stream.serve.api.overlay import load_effective
from stream.serve.children import LOG_FORMAT, RestartPolicy
from stream.serve.endpoints import EndpointError, Endpoints, warn_if_exposed
from stream.serve.producer_pool import PoolStream, ProducerPool
from stream.serve.reload import ReloadRequests, plan_reload
from stream.serve.rundir import RunDirectory
from stream.serve.sharding import owns
from stream.serve.worker_handle import WorkerHandle

__all__ = ["LOG_FORMAT", "RestartPolicy", "Supervisor", "SupervisorError"]

log = logging.getLogger("adafocus.supervisor")

STOP_DETAIL = "pipeline stopped"


class SupervisorError(RuntimeError):
    """A problem found while starting (a port in use, a model that does not load):
    reported as one line, exit status 2."""


class Supervisor:
    """One pipeline. `run()` blocks until stopped and returns the exit status."""

    def __init__(
        self,
        config: PipelineConfig,
        config_path: str | Path | None = None,
        *,
        policy: RestartPolicy | None = None,
    ) -> None:
        self._config = config
        self._config_path = None if config_path is None else Path(config_path)
        self._policy = policy or RestartPolicy()
        self._log_level = logging.getLogger().getEffectiveLevel()
        self._stop_requested = False
        self._stop_why = ""
        self._reload_requested = False
        self._reloads = ReloadRequests()
        self._exit_status = 0
        self._pool: ProducerPool | None = None
        self._worker: WorkerHandle | None = None
        self._frame_size: tuple[int, int] | None = None
        self._run_dir: RunDirectory | None = None
        self._endpoints = Endpoints()
        self._metrics: PipelineMetrics | None = None
        self._cpu: CpuMeter | None = None

    # ------------------------------------------------------------------ control

    def request_stop(self, why: str = "asked to stop") -> None:
        if not self._stop_requested:
            self._stop_why = why
        self._stop_requested = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def reload_and_wait(self, timeout_s: float) -> str | None:
        """From another thread (the stream API): reload as SIGHUP does and wait
        until the loop has; returns why it failed, None when it applied."""
        return self._reloads.wait(self._reloads.ask(), timeout_s)

    def stream_sections(self) -> dict[str, StreamSection]:
        """The settings of every running stream (any thread)."""
        pool = self._pool
        streams = pool.snapshot() if pool is not None else {}
        return {sid: stream.section for sid, stream in streams.items()}

    def ring_name(self, stream_id: str) -> str | None:
        """The frame ring of a running stream (any thread), None for no stream."""
        pool = self._pool
        stream = pool.snapshot().get(stream_id) if pool is not None else None
        return None if stream is None else stream.ring.name

    def run(self) -> int:
        """Start, supervise until SIGINT/SIGTERM (or `request_stop`), stop.
        Raises SupervisorError for start-up problems."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.request_stop("SIGINT"))
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        try:
            self._start()
            while not self._stop_requested:
                asked = self._reloads.pending()
                if self._reload_requested or asked:
                    self._reload_requested = False
                    problem = self._reload()
                    if asked:
                        self._reloads.served(asked, problem)
                self._wait_for_something(0.1)
                self._poll_children()
        finally:
            self._shutdown()
        return self._exit_status

    # ------------------------------------------------------------------ start

    def _wanted(self, config: PipelineConfig) -> dict[str, StreamSection]:
        """The streams this shard serves."""
        shard = config.shard
        return {s.id: s for s in config.streams if owns(s.id, shard.index, shard.count)}

    def _admit(self, config: PipelineConfig, wanted: dict[str, StreamSection]) -> None:
        """The check every addition of streams goes through (start, reload): raises
        AdmissionError, one line naming the limit, when this host must refuse
        `wanted` (stream.serve.admission). Memory is checked once the worker has
        loaded the model (the rings' frame size is the model's)."""
        running = {} if self._pool is None else {s.id: s for s in self._pool}
        added = [s for sid, s in wanted.items() if sid not in running]
        per = config.ingest.streams_per_process
        now = 0 if self._pool is None else self._pool.process_count
        admit(len(wanted), added, config.limits, config.ingest, self._frame_size,
              max(0, processes_for(len(wanted), per) - now))

    def _start(self) -> None:
        try:  # before anything is bound or spawned: a refusal touches nothing
            self._admit(self._config, self._wanted(self._config))
        except AdmissionError as exc:
            raise SupervisorError(str(exc)) from None
        removed = sweep_stale_segments()
        if removed:
            log.info("removed %d frame ring(s) left by dead supervisors", len(removed))
        self._run_dir = RunDirectory()
        try:  # the ports first: a second pipeline on the same ports touches nothing
            self._endpoints.open(self._config, self._run_dir.results_endpoint, self,
                                 self._config_path)
        except EndpointError as exc:
            raise SupervisorError(str(exc)) from None
        warn_if_exposed(self._config)
        self._run_dir.prepare_metrics()
        self._metrics = PipelineMetrics()  # after the multiprocess dir is set
        self._cpu = CpuMeter(self._metrics, "supervisor")
        self._endpoints.start(self._metrics)
        wanted = self._wanted(self._config)
        self._pool = ProducerPool(self._run_dir.results_endpoint, self._policy, self._log_level,
                                  self._metrics, self._config.ingest.streams_per_process)
        self._worker = WorkerHandle(self._config, self._run_dir.results_endpoint, self._policy,
                                    self, self._log_level, self._metrics)
        self._worker.start(self._worker_streams())
        self._await_worker_ready()
        if self._frame_size is not None:
            try:
                self._admit(self._config, wanted)
            except AdmissionError as exc:
                raise SupervisorError(str(exc)) from None
        for section in wanted.values():
            if self._stop_requested:  # SIGTERM while starting: start nothing more
                return
            self._add_stream(section)

    def _await_worker_ready(self) -> None:
        """Block until the first worker loaded the model: the rings' frame size is
        the model's, and a checkpoint that does not load is a start-up error."""
        worker = self._worker
        assert worker is not None
        deadline = time.monotonic() + self._policy.worker_start_timeout_s
        while self._frame_size is None and not self._stop_requested:
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"inference worker did not load the model within "
                    f"{self._policy.worker_start_timeout_s:g} s"
                )
            self._wait_for_something(0.1)
            died = worker.exited_before_ready()
            if died is not None and self._frame_size is None:
                raise SupervisorError(f"inference worker failed while loading the model ({died})")

    # ------------------------------------------------------------------ the loop

    def _wait_for_something(self, timeout: float) -> None:
        """Sleep until a child exits, the worker says something, or `timeout`."""
        handles = [] if self._pool is None else self._pool.handles()
        if self._worker is not None:
            handles += self._worker.handles()
        if handles:
            wait(handles, timeout)
        else:
            time.sleep(timeout)

    def _poll_children(self) -> None:
        assert self._worker is not None and self._endpoints.health is not None
        self._worker.poll(self._worker_streams())
        tick = self._worker.last_tick()
        if tick is not None:
            self._endpoints.health.worker_ticked(tick)
        assert self._pool is not None and self._cpu is not None
        for report in self._pool.poll(self._config.ingest):
            self._endpoints.report(report.stream, report.state, report.detail)
        self._cpu.update()

    # ------------------------------------------------------------------ worker news

    def _worker_streams(self) -> list[WorkerStream]:
        return [WorkerStream(s.id, s.ring.name, s.section.lossless)
                for s in (self._pool or ())]

    def worker_ready(self, info: dict[str, Any]) -> None:
        size = (int(info["frame_size"][0]), int(info["frame_size"][1]))
        if self._frame_size is not None and size != self._frame_size:
            # The checkpoint file was replaced by one for another frame size: the
            # rings cannot hold its frames. Only a restart can apply it.
            held = self._frame_size
            self._fail(f"the restarted worker's model wants {size[1]}x{size[0]} frames, the rings "
                       f"hold {held[1]}x{held[0]} (restart the pipeline to change models)")
            return
        if self._frame_size is None:
            self._frame_size = size
            log.info("model loaded on %s: %dx%d frames, %d classes", info["device"], size[1],
                     size[0], len(info["class_names"]))
        self._endpoints.control("inference", available=True)

    def worker_error(self, message: str) -> None:
        if self._frame_size is None:
            raise SupervisorError(message)
        self._fail(f"inference worker cannot load the model any more: {message}")

    def worker_restarting(self, why: str) -> None:
        """Streams whose source is up are `stalled` until it is back."""
        self._endpoints.control("inference", available=False)

    def worker_gone(self, why: str) -> None:
        if not self._stop_requested:  # worker_error may have stopped us already
            self._fail(why)

    def _fail(self, why: str) -> None:
        log.error("%s; stopping the pipeline", why)
        self._exit_status = 1
        self.request_stop(why)

    # ------------------------------------------------------------------ streams

    def _add_stream(self, section: StreamSection) -> None:
        assert self._frame_size is not None and self._pool is not None
        height, width = self._frame_size
        ring = FrameRing.create(
            ring_name("adafocus", section.id), self._config.ingest.ring_slots, height, width
        )
        # Before its producer can say anything: the states ignore unknown streams.
        self._endpoints.control("add", stream=section.id, t=time.time())
        self._pool.add(section, ring, self._config.ingest)
        self._send_worker_add(self._pool.stream(section.id))

    def _send_worker_add(self, stream: PoolStream) -> None:
        assert self._worker is not None
        self._worker.send(("add", WorkerStream(stream.id, stream.ring.name,
                                               stream.section.lossless)))

    def _remove_stream(self, sid: str, detail: str) -> None:
        assert self._worker is not None and self._pool is not None
        self._worker.send(("remove", sid))
        self._pool.release(sid)
        self._endpoints.control("remove", stream=sid, detail=detail)

    # ------------------------------------------------------------------ reload

    def _reload(self) -> str | None:
        """Apply the config file (and the API's state file); returns the problem
        that kept it from applying, None when it did."""
        if self._config_path is None:
            log.warning("reload ignored: this pipeline was not started from a config file")
            return "this pipeline was not started from a config file"
        try:
            loaded = load_effective(self._config_path)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            return f"reload failed: {exc}"
        # Only the streams, ingest settings and limits are reloaded; the shard is the
        # one this process started with (see the module docstring).
        config = self._config.model_copy(
            update={"streams": loaded.streams, "ingest": loaded.ingest, "limits": loaded.limits}
        )
        assert self._pool is not None
        wanted = self._wanted(config)
        try:
            self._admit(config, wanted)
        except AdmissionError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return f"reload refused: {exc}"
        for section in ("model", "publish", "metrics", "api", "worker"):
            if getattr(loaded, section) != getattr(self._config, section):
                log.warning("reload: changes to %s take effect only after a restart", section)
        old_ingest = self._config.ingest
        self._config = config
        plan = plan_reload({s.id: s.section for s in self._pool}, wanted, old_ingest,
                           config.ingest)
        for sid in plan.removed:
            self._remove_stream(sid, "removed from the config")
        for section in plan.rebuilt:
            self._remove_stream(section.id, "restarting with a new configuration")
            self._add_stream(section)
        for section in plan.restarted:
            self._pool.restart(section, self._config.ingest)
            self._send_worker_add(self._pool.stream(section.id))
        for section in plan.added:
            self._add_stream(section)
        log.info("reload: %d stream(s) added, %d removed, %d restarted, %d unchanged",
                 len(plan.added), len(plan.removed), len(plan.restarted) + len(plan.rebuilt),
                 plan.unchanged)
        return None

    # ------------------------------------------------------------------ stop

    def _shutdown(self) -> None:
        """Children first (so nothing writes any more), then the final events, the
        sockets and the shared memory. One deadline for every child, however many
        there are: SIGTERM to all, then SIGKILL to whoever is left at
        stop_grace_s. Bounded: about stop_grace_s + 1.5 s."""
        started = time.monotonic()
        self._reloads.close("the pipeline is stopping")
        log.info("stopping (%s)", self._stop_why or "start-up failed")
        deadline = started + self._policy.stop_grace_s
        if self._pool is not None:
            self._pool.terminate()
        if self._worker is not None:
            self._worker.stop(deadline)
        if self._pool is not None:
            self._pool.stop(deadline)
        self._endpoints.final_events(STOP_DETAIL, timeout_s=1.0)
        self._endpoints.close()
        if self._pool is not None:
            self._pool.release_all()
        if self._run_dir is not None:
            self._run_dir.remove()
        log.info("stopped in %.1f s", time.monotonic() - started)
