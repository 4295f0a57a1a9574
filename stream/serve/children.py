"""What every child process of the supervisor shares: how it starts, how it is
stopped, and how its end is described in one log line.

Children are started with the `spawn` context: a fresh interpreter carries no
locks, threads or sockets of the supervisor (forking a process that runs a ZMQ
context and an HTTP server is unsafe), and each child imports only what it needs
(a producer never loads PyTorch).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from stream.backoff import Backoff
from stream.metrics import mark_process_dead, use_process_identifier

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

log = logging.getLogger("adafocus.supervisor")


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

    def backoff(self) -> Backoff:
        """A fresh restart schedule for one child."""
        return Backoff(self.initial_s, self.max_s, max_tries=self.max_restarts,
                       window_s=self.window_s, stable_s=self.stable_s)


def spawn_context() -> SpawnContext:
    return multiprocessing.get_context("spawn")


def die_with_parent() -> None:
    """Have the kernel SIGTERM this process when its parent dies (Linux
    PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no orphans behind."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def child_main(log_level: int, metrics_id: str, target: Callable[..., Any], *args: Any) -> None:
    """Entry of every child: log like the supervisor, name its metric files by
    role (before the target creates any metric), die with the supervisor, and
    leave Ctrl-C to it, which stops children in order with SIGTERM (a target may
    install its own SIGINT handler)."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT, stream=sys.stderr)
    use_process_identifier(metrics_id)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(*args)


def exit_text(code: int | None) -> str:
    """How a child ended, for log lines and events: "exit status 1", "killed by SIGKILL"."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def stop_process(process: BaseProcess, metrics_id: str, deadline: float) -> None:
    """SIGTERM, then SIGKILL once the monotonic `deadline` passed; always reaps, so
    a replacement started after this never shares `metrics_id` with a live process
    (see stream.metrics.use_process_identifier). A shared deadline lets a
    shutdown signal every child first and wait for all of them at once."""
    if process.exitcode is None:
        process.terminate()
        process.join(max(0.0, deadline - time.monotonic()))
    if process.exitcode is None:
        log.warning("%s (pid %s) ignored SIGTERM; killing it", process.name, process.pid)
        process.kill()
    process.join()
    mark_process_dead(metrics_id)
