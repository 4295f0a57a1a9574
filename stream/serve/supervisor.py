"""The supervisor: owns every process, ring and socket of one pipeline.

It is an orchestrator of child handles (stream.serve.worker_handle,
stream.serve.producer_handle), each owning its process's start, restart policy
and stop, plus the public endpoints (the forwarder's PUB socket, /metrics,
/healthz, /livez). Its one loop:

- waits for news (a child exited, the worker spoke) or 0.1 s;
- applies a SIGHUP reload: re-reads the config and adds, removes or restarts
  only the streams that changed (the shard stays the one it started with: it may
  come from the command line or the environment, which a reload does not see);
- polls the worker handle (restarts after a crash or a hang) and every
  producer handle (restarts, give-ups);
- on SIGINT/SIGTERM leaves the loop and stops everything: children first, a
  final `down` per stream, sockets, shared memory; exit 0 within a few seconds.

Signal handlers only set flags; everything happens in the loop's thread except
forwarding (the Forwarder's thread) and HTTP (MetricsServer's thread), which
only share the HealthState and the `_last_event` table with it.
"""

from __future__ import annotations

import logging
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from stream.config import ConfigError, PipelineConfig, StreamSection, load_config
from stream.infer.worker import WorkerStream
from stream.metrics import PipelineMetrics
from stream.ring import FrameRing, ring_name, sweep_stale_segments
from stream.serve.children import LOG_FORMAT, RestartPolicy
from stream.serve.endpoints import EndpointError, Endpoints
from stream.serve.http import HealthState
from stream.serve.producer_handle import ProducerHandle
from stream.serve.reload import plan_reload
from stream.serve.rundir import RunDirectory
from stream.serve.sharding import owns
from stream.serve.worker_handle import WorkerHandle

__all__ = ["LOG_FORMAT", "RestartPolicy", "Supervisor", "SupervisorError"]

log = logging.getLogger("adafocus.supervisor")

WORKER_STALL_DETAIL = "inference worker restarting"
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
        self._reload_requested = False
        self._exit_status = 0
        self._streams: dict[str, ProducerHandle] = {}
        self._worker: WorkerHandle | None = None
        self._worker_stalled: set[str] = set()
        self._frame_size: tuple[int, int] | None = None
        # (state, detail) of the newest event per stream; written by the forwarder thread
        self._last_event: dict[str, tuple[str, str]] = {}
        self._run_dir: RunDirectory | None = None
        self._endpoints = Endpoints()
        self._health: HealthState | None = None

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        self._stop_requested = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def run(self) -> int:
        """Start, supervise until SIGINT/SIGTERM (or `request_stop`), stop.
        Raises SupervisorError for start-up problems."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        try:
            self._start()
            while not self._stop_requested:
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload()
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

    def _start(self) -> None:
        removed = sweep_stale_segments()
        if removed:
            log.info("removed %d frame ring(s) left by dead supervisors", len(removed))
        self._run_dir = RunDirectory()
        self._run_dir.prepare_metrics()
        metrics = PipelineMetrics()  # after the multiprocess dir is set
        wanted = self._wanted(self._config)
        self._health = HealthState(wanted, self._config.worker.hang_timeout_s)
        try:
            self._endpoints.open(self._config, self._run_dir.results_endpoint, self._health,
                                 self._on_event, metrics)
        except EndpointError as exc:
            raise SupervisorError(str(exc)) from None
        self._worker = WorkerHandle(
            self._config, self._run_dir.results_endpoint, self._policy, self, self._log_level
        )
        self._worker.start(self._worker_streams())
        self._await_worker_ready()
        for section in wanted.values():
            if self._stop_requested:
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

    # ------------------------------------------------------------------ events

    def _on_event(self, payload: dict[str, Any]) -> None:
        """Forwarder thread: every event.* message, ours included."""
        self._last_event[payload["stream"]] = (payload["state"], payload.get("detail", ""))
        assert self._health is not None
        self._health.on_event(payload)

    def _publish_event(self, stream_id: str, state: str, detail: str) -> None:
        self._endpoints.publish_event(stream_id, state, detail)

    # ------------------------------------------------------------------ the loop

    def _wait_for_something(self, timeout: float) -> None:
        """Sleep until a child exits, the worker says something, or `timeout`."""
        handles = [h for stream in self._streams.values() for h in stream.handles()]
        if self._worker is not None:
            handles += self._worker.handles()
        if handles:
            wait(handles, timeout)
        else:
            time.sleep(timeout)

    def _poll_children(self) -> None:
        assert self._worker is not None and self._health is not None
        self._worker.poll(self._worker_streams())
        tick = self._worker.last_tick()
        if tick is not None:
            self._health.worker_ticked(tick)
        for sid, stream in self._streams.items():
            outcome = stream.poll(self._config.ingest)
            if outcome is not None and outcome.state is not None:
                self._publish_event(sid, outcome.state, outcome.detail)

    # ------------------------------------------------------------------ worker news

    def _worker_streams(self) -> list[WorkerStream]:
        return [WorkerStream(sid, s.ring.name, s.section.lossless)
                for sid, s in self._streams.items()]

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
        for sid in self._worker_stalled:  # marked stalled by our restart, unless news came since
            if self._last_event.get(sid) == ("stalled", WORKER_STALL_DETAIL):
                self._publish_event(sid, "up", "inference resumed")
        self._worker_stalled.clear()

    def worker_error(self, message: str) -> None:
        if self._frame_size is None:
            raise SupervisorError(message)
        self._fail(f"inference worker cannot load the model any more: {message}")

    def worker_restarting(self, why: str) -> None:
        """Its streams are reported `stalled` until it is back."""
        for sid in self._streams:
            self._publish_event(sid, "stalled", WORKER_STALL_DETAIL)
        self._worker_stalled = set(self._streams)

    def worker_gone(self, why: str) -> None:
        if not self._stop_requested:  # worker_error may have stopped us already
            self._fail(why)

    def _fail(self, why: str) -> None:
        log.error("%s; stopping the pipeline", why)
        self._exit_status, self._stop_requested = 1, True

    # ------------------------------------------------------------------ streams

    def _add_stream(self, section: StreamSection) -> None:
        assert self._frame_size is not None and self._run_dir is not None
        height, width = self._frame_size
        ring = FrameRing.create(
            ring_name("adafocus", section.id), self._config.ingest.ring_slots, height, width
        )
        stream = ProducerHandle(section, ring, self._free_slot(),
                                self._run_dir.results_endpoint, self._policy, self._log_level)
        self._streams[section.id] = stream
        stream.start(self._config.ingest)
        self._send_worker_add(stream)

    def _send_worker_add(self, stream: ProducerHandle) -> None:
        assert self._worker is not None
        self._worker.send(("add", WorkerStream(stream.id, stream.ring.name,
                                               stream.section.lossless)))

    def _free_slot(self) -> int:
        """The lowest slot no running stream holds. Producers' metric files are
        named by slot, not by stream id: streams come and go with reloads, and
        per-id files would pile up just as per-PID files did; slots are reused,
        so the directory stays as large as the most streams ever run at once."""
        taken = {s.slot for s in self._streams.values()}
        return min(set(range(len(taken) + 1)) - taken)

    def _remove_stream(self, sid: str, detail: str) -> None:
        assert self._worker is not None
        stream = self._streams.pop(sid)
        self._worker.send(("remove", sid))
        stream.release()
        self._publish_event(sid, "down", detail)

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
        # Only the streams and ingest settings are reloaded; the shard is the one
        # this process started with (see the module docstring).
        old_ingest = self._config.ingest
        self._config = self._config.model_copy(
            update={"streams": config.streams, "ingest": config.ingest}
        )
        plan = plan_reload(
            {sid: stream.section for sid, stream in self._streams.items()},
            self._wanted(self._config), old_ingest, config.ingest,
        )
        for sid in plan.removed:
            self._remove_stream(sid, "removed from the config")
        for section in plan.rebuilt:
            self._remove_stream(section.id, "restarting with a new configuration")
            self._add_stream(section)
        for section in plan.restarted:
            self._streams[section.id].restart_with(section, self._config.ingest)
            self._send_worker_add(self._streams[section.id])
        for section in plan.added:
            self._add_stream(section)
        assert self._health is not None
        self._health.set_streams(self._wanted(self._config))
        log.info("reload: %d stream(s) added, %d removed, %d restarted, %d unchanged",
                 len(plan.added), len(plan.removed), len(plan.restarted) + len(plan.rebuilt),
                 plan.unchanged)

    # ------------------------------------------------------------------ stop

    def _shutdown(self) -> None:
        """Children first (so nothing writes any more), then the final events, the
        sockets and the shared memory. Bounded: about stop_grace_s + 1 s."""
        started = time.monotonic()
        for stream in self._streams.values():
            stream.terminate()
        if self._worker is not None:
            self._worker.stop()
        for stream in self._streams.values():
            stream.stop()
        for sid in self._streams:
            if self._last_event.get(sid, ("",))[0] not in ("down", "ended"):
                self._publish_event(sid, "down", STOP_DETAIL)
        self._await_forwarded(deadline=time.monotonic() + 1.0)
        self._endpoints.close()
        for stream in self._streams.values():
            stream.release()
        self._streams.clear()
        if self._run_dir is not None:
            self._run_dir.remove()
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
