"""The supervisor's handle on the inference worker process.

It owns the worker's whole life: start it with the streams it must read, pass
stream changes down its control pipe, read what it says (`ready` with the model's
frame size, or `error` when the model does not load), restart it with backoff
when it dies, and restart it when it is alive but has not ticked for
`worker.hang_timeout_s` (the shared heartbeat it stamps every loop): an
inference call stuck in a driver must not silence every camera for good.

What the supervisor must do about it (the rings' frame size, stream states, a
stop) it learns through the `WorkerListener` callbacks, called from `poll`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from stream.config import PipelineConfig
from stream.exitcodes import EXIT_MODEL_ERROR
from stream.infer.worker import WorkerStream, run_worker
from stream.metrics import WORKER_IDENTIFIER, PipelineMetrics
from stream.serve.children import (
    RestartPolicy,
    child_main,
    exit_text,
    spawn_context,
    stop_process,
)

log = logging.getLogger("adafocus.supervisor")


class WorkerListener(Protocol):
    def worker_ready(self, info: dict[str, Any]) -> None:
        """The model loaded: frame size, class names, device."""

    def worker_error(self, message: str) -> None:
        """The model does not load (a configuration problem)."""

    def worker_restarting(self, why: str) -> None:
        """The worker died or hung and is being restarted."""

    def worker_gone(self, why: str) -> None:
        """The worker cannot be kept running: the pipeline must stop."""


@dataclass
class _Process:
    process: BaseProcess
    control: Connection
    heartbeat: Any  # shared double, see stream.infer.worker.Heartbeat
    started: float
    ready_at: float | None = None


class WorkerHandle:
    """Start, watch, restart and stop the one inference worker of a pipeline."""

    def __init__(
        self,
        config: PipelineConfig,
        results_endpoint: str,
        policy: RestartPolicy,
        listener: WorkerListener,
        log_level: int,
        metrics: PipelineMetrics,
    ) -> None:
        self._config = config
        self._results_endpoint = results_endpoint
        self._policy = policy
        self._listener = listener
        self._log_level = log_level
        self._restarts = metrics.process_restarts.labels("worker", "")
        self._mp = spawn_context()
        self._backoff = policy.backoff()
        self._current: _Process | None = None
        self._restart_at: float | None = None

    @property
    def running(self) -> bool:
        return self._current is not None

    def handles(self) -> list[Any]:
        """What `multiprocessing.connection.wait` should watch for news."""
        if self._current is None:
            return []
        return [self._current.process.sentinel, self._current.control]

    def start(self, streams: list[WorkerStream]) -> None:
        model, worker, publish = self._config.model, self._config.worker, self._config.publish
        ours, theirs = self._mp.Pipe(duplex=True)
        heartbeat = self._mp.RawValue(ctypes.c_double, 0.0)
        process = self._mp.Process(
            target=child_main,
            args=(
                self._log_level,
                WORKER_IDENTIFIER,
                run_worker,
                model,
                worker,
                self._results_endpoint,
                publish.sndhwm,
                streams,
                theirs,
                heartbeat,
            ),
            name="adafocus-worker",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its end; ours sees EOF when it dies
        self._current = _Process(process, ours, heartbeat, time.monotonic())
        log.info("started inference worker (pid %d)", process.pid)

    def send(self, command: tuple[str, Any]) -> None:
        """Tell a running worker about a stream change. A worker that is down gets
        the full list when it restarts, so a failed send needs no retry."""
        current = self._current
        if current is None or current.process.exitcode is not None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError included
            current.control.send(command)

    def last_tick(self) -> float | None:
        """Monotonic time of the worker's last loop, None before its first."""
        beat = self._current.heartbeat.value if self._current is not None else 0.0
        return beat if beat > 0 else None

    def exited_before_ready(self) -> str | None:
        """While waiting for the first `ready`: the exit text of a worker that died."""
        current = self._current
        if current is None or current.ready_at is not None:
            return None
        self._read_messages(current)
        code = current.process.exitcode
        return None if code is None or current.ready_at is not None else exit_text(code)

    def poll(self, streams: list[WorkerStream]) -> None:
        """Read what the worker said, and restart it when it died or hangs (it is
        restarted with `streams`, the supervisor's current list)."""
        now = time.monotonic()
        current = self._current
        if current is None:
            if self._restart_at is not None and now >= self._restart_at:
                self._restart_at = None
                self.start(streams)
            return
        self._read_messages(current)
        code = current.process.exitcode
        timeout = self._config.worker.hang_timeout_s
        if code == EXIT_MODEL_ERROR:
            self._stop_current()
            self._listener.worker_gone(f"inference worker exited: {exit_text(code)}")
        elif code is not None:
            self._restart(f"inference worker (pid {current.process.pid}) died: {exit_text(code)}")
        elif current.ready_at is not None:
            silent = now - max(current.heartbeat.value, current.ready_at)
            if silent > timeout:
                self._restart(
                    f"inference worker (pid {current.process.pid}) has not ticked for "
                    f"{silent:.1f} s (hang timeout {timeout:g} s)"
                )
        elif now - current.started > self._policy.worker_start_timeout_s:
            self._restart(
                f"inference worker (pid {current.process.pid}) did not load the model within "
                f"{self._policy.worker_start_timeout_s:g} s"
            )

    def stop(self, deadline: float) -> None:
        """Ask the worker to stop, then make sure it did by `deadline` (monotonic)."""
        self.send(("stop", None))
        self._stop_current(deadline)
        self._restart_at = None

    def _read_messages(self, current: _Process) -> None:
        try:
            while current.control.poll():
                verb, arg = current.control.recv()
                if verb == "ready":
                    current.ready_at = time.monotonic()
                    self._listener.worker_ready(arg)
                elif verb == "error":
                    self._listener.worker_error(arg)
        except (EOFError, OSError):
            pass  # it died; poll sees the exit code

    def _restart(self, why: str) -> None:
        """Stop the worker and schedule a new one (the supervisor keeps watching
        the producers meanwhile)."""
        current = self._current
        assert current is not None
        now = time.monotonic()
        delay = self._backoff.next_delay(now, now - current.started)
        self._stop_current()
        if delay is None:
            self._listener.worker_gone(
                f"{why}; it failed {self._backoff.tries} times within "
                f"{self._policy.window_s:g} s"
            )
            return
        log.warning("%s; restarting it in %.1f s", why, delay)
        self._restarts.inc()
        self._listener.worker_restarting(why)
        self._restart_at = now + delay

    def _stop_current(self, deadline: float | None = None) -> None:
        current = self._current
        if current is None:
            return
        if deadline is None:
            deadline = time.monotonic() + self._policy.stop_grace_s
        stop_process(current.process, WORKER_IDENTIFIER, deadline)
        current.control.close()
        self._current = None
