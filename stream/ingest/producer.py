"""One producer process per stream: source -> frame ring, with reconnects.

`run_producer(stream, ring_name, events_endpoint, ingest)` is the process
target (spawn-safe: every argument pickles). It attaches the ring the
supervisor created, then loops: open the source, write every frame into the
ring stamped with seq / pts / capture time, and when the source fails,
reconnect with bounded exponential backoff and jitter. State changes go out as
events (`connecting`, `up`, `stalled`, `reconnecting`, `down`, `ended`) on a
ZeroMQ PUSH socket that never blocks.

Exit codes: 0 stopped by SIGTERM/SIGINT or the source ended (after `ended`);
3 permanent failure (after `down`): the supervisor does not restart those;
anything else is a crash and is restarted.

Why a thread: the ingest loop runs in a worker thread and the main thread only
waits for signals. A Python signal handler runs only between bytecodes, and
libav may sit in a network read for up to the stall timeout; with the main
thread free, SIGTERM is acted on within a fraction of a second, and a thread
still stuck inside libav is abandoned (`os._exit`) after `STOP_GRACE_S`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import zmq

from stream.backoff import Backoff
from stream.config import IngestSection, StreamSection
from stream.exitcodes import EXIT_CRASH, EXIT_OK, EXIT_PERMANENT
from stream.ingest.sources import Source, open_source
from stream.ingest.uri import (
    SourceError,
    SourceSpec,
    SourceTimeout,
    SourceUnavailable,
    parse_source,
)
from stream.metrics import PipelineMetrics
from stream.ring import FrameRing
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait

log = logging.getLogger(__name__)


# Not configuration: how long a stopping producer waits for its ingest thread, and
# how many events queue while the supervisor is slow.
STOP_GRACE_S = 0.5
EVENTS_HWM = 1000


class Producer:
    """The ingest loop of one stream (runs in the producer's worker thread)."""

    def __init__(
        self,
        stream_id: str,
        source: SourceSpec,
        ring: FrameRing,
        events: zmq.Socket,
        metrics: PipelineMetrics,
        ingest: IngestSection,
        stop: threading.Event,
        max_attempts: int | None = None,
    ):
        self.id = stream_id
        self._source = source
        self._ring = ring
        self._events = events
        self._ingest = ingest
        self._stop = stop
        self._backoff = Backoff(
            ingest.backoff_initial_s,
            ingest.backoff_max_s,
            jitter=ingest.backoff_jitter,
            max_tries=max_attempts,
        )
        self._decoded = metrics.frames_decoded.labels(stream_id)
        self._decode_errors = metrics.frames_dropped.labels(stream_id, "decode_error")
        self._overwritten = metrics.frames_dropped.labels(stream_id, "overwritten")
        self._reconnects = metrics.reconnects.labels(stream_id)
        self._fill = metrics.ring_fill.labels(stream_id)
        self._counted_overwritten = ring.overwritten
        self._errors_this_session = 0
        self._was_up = False

    def emit(self, state: str, detail: str) -> None:
        """Send an event (dropped, never waited for, if the queue is full) and log it."""
        if state in ("up", "connecting", "ended"):
            log.info("stream %s %s: %s", self.id, state, detail)
        else:
            log.warning("stream %s %s: %s", self.id, state, detail)
        send_nowait(self._events, event_frames(self.id, state, detail, time.time()))

    def run(self) -> int:
        """Connect, stream, reconnect; returns the process exit code."""
        self.emit("connecting", self._source.masked)
        while not self._stop.is_set():
            try:
                ended = self._session()
            except SourceTimeout as exc:
                self.emit("stalled", str(exc))
                reason = str(exc)
            except SourceUnavailable as exc:
                reason = str(exc)
            except SourceError as exc:
                self.emit("down", str(exc))
                return EXIT_PERMANENT
            else:
                if ended is None:  # stopped
                    break
                if ended:
                    self.emit("ended", ended)
                    return EXIT_OK
                reason = f"{self._source.masked}: connection lost (the source ended the stream)"
            if self._was_up:
                self._backoff.succeeded()
            delay = self._backoff.next_delay(time.monotonic())
            if delay is None:
                self.emit("down", f"giving up after {self._backoff.tries} attempt(s): {reason}")
                return EXIT_PERMANENT
            self.emit("reconnecting", f"{reason}; retry {self._backoff.tries} in {delay:.1f} s")
            self._reconnects.inc()
            self._stop.wait(delay)
        return EXIT_OK

    def _session(self) -> str | None:
        """One connection: open, stream until the end or an error.

        Returns None when stopped, "" when a live source reached its end, or the
        `ended` detail when a file did. Raises the source's errors."""
        self._was_up = False
        self._errors_this_session = 0
        source = open_source(
            self._source,
            self._ring.height,
            self._ring.width,
            open_timeout_s=self._ingest.open_timeout_s,
            stall_timeout_s=self._ingest.stall_timeout_s,
            stop=self._stop,
            on_decode_error=self._decode_error,
        )
        try:
            frames = self._pump(source)
        finally:
            source.close()
        if self._stop.is_set():
            return None
        if self._source.live:
            return ""
        n_errors = self._errors_this_session
        errors = f", {n_errors} decode error(s)" if n_errors else ""
        note = f"; {source.end_note}" if source.end_note else ""
        return f"end of {self._source.masked} after {frames} frame(s){errors}{note}"

    def _pump(self, source: Source) -> int:
        """The per-frame path: decode (in the source) -> one copy into the ring -> stamp."""
        ring = self._ring
        seq = ring.last_seq + 1
        frames = 0
        ring.new_epoch()
        for frame in source.frames():
            t_capture = time.time()
            ring.write(frame.image, seq, frame.pts, t_capture, frame.truth)
            seq += 1
            frames += 1
            self._decoded.inc()
            if not self._was_up:
                self._was_up = True
                self.emit("up", source.description)
            self._fill.set(ring.fill())
            overwritten = ring.overwritten
            if overwritten != self._counted_overwritten:
                self._overwritten.inc(overwritten - self._counted_overwritten)
                self._counted_overwritten = overwritten
        return frames

    def _decode_error(self) -> None:
        self._errors_this_session += 1
        self._decode_errors.inc()


def run_producer(
    stream: StreamSection,
    ring_name: str,
    events_endpoint: str,
    ingest: IngestSection,
    *,
    max_attempts: int | None = None,
) -> None:
    """Process target: ingest `stream` into the ring `ring_name` until stopped,
    ended or permanently failed; exits with the code (see module docstring).
    `max_attempts`: reconnects in a row before giving up (`down`); None: never."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    context = zmq.Context()
    events = connect_push(context, events_endpoint, hwm=EVENTS_HWM)
    try:
        source = parse_source(stream.uri, stream.source_options)
    except SourceError as exc:
        send_nowait(events, event_frames(stream.id, "down", str(exc), time.time()))
        log.warning("stream %s down: %s", stream.id, exc)
        _close(events, context)
        sys.exit(EXIT_PERMANENT)
    try:
        ring = FrameRing.attach(ring_name)
    except (OSError, ValueError) as exc:  # the supervisor's ring is missing or not a ring
        send_nowait(events, event_frames(stream.id, "down", f"frame ring: {exc}", time.time()))
        _close(events, context)
        sys.exit(EXIT_PERMANENT)
    metrics = PipelineMetrics()
    producer = Producer(stream.id, source, ring, events, metrics, ingest, stop, max_attempts)
    outcome: list[int] = []
    thread = threading.Thread(
        target=lambda: outcome.append(_guarded(producer)), name=f"ingest-{stream.id}", daemon=True
    )
    thread.start()
    while thread.is_alive() and not stop.wait(0.1):
        pass
    thread.join(STOP_GRACE_S if stop.is_set() else None)
    if thread.is_alive():  # stuck inside libav: leave without it (see module docstring)
        log.warning("stream %s: ingest thread still busy after stop; exiting without it", stream.id)
        os._exit(EXIT_OK)
    ring.close()
    _close(events, context)
    sys.exit(outcome[0] if outcome else EXIT_CRASH)


def _guarded(producer: Producer) -> int:
    """Run the loop; an unexpected exception is logged (once) and becomes exit code 1,
    so the supervisor restarts the process instead of the thread dying silently."""
    try:
        return producer.run()
    except Exception:
        log.exception("stream %s: producer crashed", producer.id)
        return 1


def _close(events: zmq.Socket, context: zmq.Context) -> None:
    events.close()  # lingers up to the socket's linger for a final event
    context.term()
