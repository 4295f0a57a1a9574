"""What /healthz and /livez answer, from the stream states and the worker's ticks.

/healthz (readiness): 200 when every configured stream is `up` and the worker
ticked within its hang timeout, 503 otherwise, with a JSON body that names what
is not healthy (for people and for Kubernetes probes alike). The stream states
are the one record kept by stream.serve.states, so /healthz can never disagree
with the `event.*` messages or the `stream_state` gauge.

/livez (liveness) is the worker half of that: 200 while the worker ticks within
its hang timeout, whatever the streams do. A camera that is down is the camera's
problem; restarting the pipeline (a liveness failure) would stop every other
stream too and bring that one back no sooner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from stream.serve.states import StreamState


class HealthState:
    """Reads the streams' states from `states()` (any thread) and keeps the
    worker's last tick, which the supervisor loop reports. Times are
    `time.monotonic()` seconds (system-wide on Linux, so a tick time read from
    another process compares correctly)."""

    def __init__(
        self,
        states: Callable[[], Mapping[str, StreamState]],
        hang_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hang_timeout_s = hang_timeout_s
        self._states = states
        self._clock = clock
        self._lock = threading.Lock()
        self._last_tick: float | None = None

    def worker_ticked(self, at: float | None = None) -> None:
        """The worker finished a loop iteration at `at` (monotonic; default now)."""
        with self._lock:
            self._last_tick = self._clock() if at is None else at

    def _worker(self) -> tuple[list[str], dict[str, Any]]:
        """(problems, the body's `worker` part) from the last tick time."""
        with self._lock:
            last_tick = self._last_tick
        age = None if last_tick is None else max(0.0, self._clock() - last_tick)
        problems = []
        if age is None:
            problems.append("worker has not ticked yet")
        elif age > self.hang_timeout_s:
            problems.append(
                f"worker last ticked {age:.1f} s ago (hang timeout {self.hang_timeout_s:g} s)"
            )
        return problems, {"last_tick_age_s": age, "hang_timeout_s": self.hang_timeout_s}

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, JSON-ready body): every stream up and the worker ticking."""
        streams = {sid: {"state": s.state, "detail": s.detail}
                   for sid, s in sorted(self._states().items())}
        problems = [
            f"stream {sid} is {s['state']}" + (f": {s['detail']}" if s["detail"] else "")
            for sid, s in streams.items()
            if s["state"] != "up"
        ]
        worker_problems, worker = self._worker()
        problems += worker_problems
        body = {"healthy": not problems, "problems": problems, "streams": streams, "worker": worker}
        return not problems, body

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, JSON-ready body): the worker ticking, streams ignored."""
        problems, worker = self._worker()
        return not problems, {"alive": not problems, "problems": problems, "worker": worker}
