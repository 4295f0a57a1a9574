"""Every stream's state, owned in one place: what `event.*`, /healthz and the
`stream_up` / `stream_state` gauges say about a stream all come from here.

Why one owner: a stream's state depends on two independent things, its source
(what its producer reports: connecting, up, stalled, reconnecting, down, ended;
or what the supervisor reports for a producer that died) and the inference
worker (a stream whose camera is up gets no labels while the worker restarts).
When each restart or reload wrote states of its own, a worker restart turned
streams that were permanently `down` into `up` ("inference resumed"), and
/healthz believed it. Here the source state is kept as reported, the worker's
availability beside it, and the published state is derived from both, so no
unrelated event can overwrite what a stream's owner said.

Every input arrives in the forwarder's thread (producers' events and the
supervisor's `ctl.*` messages, stream.serve.forwarder), so states only ever
change in that one thread, in the order things happened; HTTP threads read
snapshots under the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from stream.metrics import PipelineMetrics
from stream.wire.messages import STATES

WORKER_DOWN_DETAIL = "inference worker restarting"
WORKER_BACK_DETAIL = "inference resumed"
FINAL_STATES = ("down", "ended")
MAX_EARLY = 10_000  # reports of streams not added yet, kept for their `add`
EARLY_S = 60.0
PublishEvent = Callable[[str, str, str, float], None]


@dataclass(frozen=True)
class StreamState:
    state: str
    detail: str
    since: float  # unix time the state began (the event's `t`)


class StreamStates:
    """The published state of every configured stream. `publish(stream, state,
    detail, t)` sends an event; `metrics`, when set, records each state in the
    `stream_up` / `stream_state` gauges."""

    def __init__(
        self,
        publish: PublishEvent,
        metrics: PipelineMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._source: dict[str, StreamState] = {}
        self._published: dict[str, StreamState] = {}
        # What producers said before their stream's `add` was handled: the
        # supervisor sends it before starting the producer, but the internal socket
        # orders messages per sender only.
        self._early: dict[str, StreamState] = {}
        self._inference = True

    # ---------------------------------------------------------------- inputs

    def add(self, stream_id: str, at: float | None = None) -> None:
        """A stream configured as of `at` (unix time), before its producer starts.
        It is `connecting` (recorded, not announced: its producer says so itself in
        a moment) unless its producer already spoke after `at`."""
        at = self._clock() if at is None else at
        with self._lock:
            if stream_id in self._source:
                return
            early = self._early.pop(stream_id, None)
            start = StreamState("connecting", "", at)
            self._source[stream_id] = self._published[stream_id] = start
            # a removed stream's last words are of no use after a while
            self._early = {sid: r for sid, r in self._early.items() if r.since > at - EARLY_S}
        self._record(stream_id, "connecting")
        if early is not None and early.since >= at:
            self.source(stream_id, early.state, early.detail, early.since)

    def source(self, stream_id: str, state: str, detail: str, t: float | None = None) -> None:
        """What the stream's producer (or the supervisor for a dead producer) says.
        A stream that is not configured is not brought back (a late message from a
        removed stream); its latest word is kept for an `add` in flight."""
        if state not in STATES:
            return
        report = StreamState(state, detail, t or self._clock())
        with self._lock:
            if stream_id not in self._source:
                if len(self._early) < MAX_EARLY:
                    self._early[stream_id] = report
                return
            self._source[stream_id] = report
        self._derive(stream_id)

    def inference(self, available: bool) -> None:
        """The worker stopped (crash, hang) or is back with the model loaded."""
        with self._lock:
            self._inference = available
            ids = list(self._source)
        for sid in ids:
            self._derive(sid)

    def remove(self, stream_id: str, detail: str) -> None:
        """A stream leaves the configuration: `down` with `detail`, then forgotten."""
        with self._lock:
            known = stream_id in self._source
        if known:
            self._publish(stream_id, "down", detail, self._clock())
            self._forget(stream_id)

    def stop(self, detail: str) -> None:
        """The pipeline stops: a final `down` for every stream not already down or
        ended. The gauges keep the last real state (they vanish with the process);
        writing `down` into them would page someone for a planned stop."""
        for sid, state in self.snapshot().items():
            if state.state not in FINAL_STATES:
                self._publish(sid, "down", detail, self._clock())

    # ---------------------------------------------------------------- outputs

    def snapshot(self) -> dict[str, StreamState]:
        """The published state of every configured stream (any thread)."""
        with self._lock:
            return dict(self._published)

    def configured(self) -> set[str]:
        with self._lock:
            return set(self._source)

    # ---------------------------------------------------------------- derivation

    def _derive(self, stream_id: str) -> None:
        with self._lock:
            source = self._source.get(stream_id)
            current = self._published.get(stream_id)
            inference = self._inference
        if source is None:
            return
        wanted = source
        if source.state == "up" and not inference:
            wanted = StreamState("stalled", WORKER_DOWN_DETAIL, self._clock())
        elif source.state == "up" and current is not None and current.detail == WORKER_DOWN_DETAIL:
            wanted = StreamState("up", WORKER_BACK_DETAIL, self._clock())
        if current is not None and (current.state, current.detail) == (wanted.state, wanted.detail):
            return
        with self._lock:
            self._published[stream_id] = wanted
        self._record(stream_id, wanted.state)
        self._publish(stream_id, wanted.state, wanted.detail, wanted.since)

    def _record(self, stream_id: str, state: str) -> None:
        if self.metrics is not None:
            self.metrics.set_stream_state(stream_id, state)

    def _forget(self, stream_id: str) -> None:
        """Its gauges stay in this process's metric file (client_python cannot
        remove a series in multiprocess mode); /metrics leaves out every stream
        that is not configured (stream.metrics.scrape_registry)."""
        with self._lock:
            self._source.pop(stream_id, None)
            self._published.pop(stream_id, None)
