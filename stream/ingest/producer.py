"""One stream's ingest loop: source -> frame ring, with reconnects.

`Producer.run` opens the source, writes every frame into the stream's ring
stamped with seq / pts / capture time, and when the source fails, reconnects
with bounded exponential backoff and jitter. State changes go out as events
(`connecting`, `up`, `stalled`, `reconnecting`, `down`, `ended`) on a ZeroMQ
PUSH socket that never blocks. It returns the stream's outcome as an exit code
(stream.exitcodes): 0 stopped or the source ended (after `ended`), 3 permanent
failure (after `down`).

A producer runs in a thread of a producer process, next to the other streams of
that process (stream.ingest.group). It keeps `deadline`, the monotonic time by
which it must show progress again (a frame, a failed open, a retry), set from
its own timeouts: a thread past its deadline is stuck inside libav, which only
a restart of its process can end.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import zmq

from stream.backoff import Backoff
from stream.config import IngestSection
from stream.exitcodes import EXIT_OK, EXIT_PERMANENT
from stream.ingest.sources import Source, open_source
from stream.ingest.uri import SourceError, SourceSpec, SourceTimeout, SourceUnavailable
from stream.metrics import PipelineMetrics
from stream.ring import FrameRing
from stream.wire.messages import event_frames
from stream.wire.push import send_nowait

log = logging.getLogger(__name__)

# Test-only fault injection: when this variable names a file that exists and holds
# this stream's id, the ingest thread deletes it and then never returns (nor looks
# at its stop flag), exactly like a call stuck inside libav. Unset in every real
# deployment; the file is not even looked for then.
TEST_HANG_FILE_ENV = "ADAFOCUS_TEST_PRODUCER_HANG_FILE"


def hang_grace_s(ingest: IngestSection) -> float:
    """How long past its own timeouts a stream may stay silent before its thread
    counts as stuck inside libav: libav's interrupt fires at the timeout, so only a
    call that ignores it stays silent this long."""
    return max(5.0, ingest.stall_timeout_s)


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
        self.grace_s = hang_grace_s(ingest)
        self._hang_file = os.environ.get(TEST_HANG_FILE_ENV)
        self.deadline = math.inf  # see the module docstring

    def _expect_progress(self, within_s: float) -> None:
        self.deadline = time.monotonic() + within_s + self.grace_s

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
        try:
            return self._loop()
        finally:
            self.deadline = math.inf

    def _loop(self) -> int:
        while not self._stop.is_set():
            self._expect_progress(self._ingest.open_timeout_s)
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
            self._expect_progress(delay)
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
            decode_threads=self._ingest.decode_threads,
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
        within = self._ingest.stall_timeout_s
        self._expect_progress(within)
        for frame in source.frames():
            self._expect_progress(within)
            if self._hang_file is not None:
                self._maybe_hang()
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

    def _maybe_hang(self) -> None:
        """See TEST_HANG_FILE_ENV."""
        try:
            with open(self._hang_file) as flag:
                if flag.read().strip() != self.id:
                    return
            os.unlink(self._hang_file)
        except OSError:
            return
        log.warning("test hook %s: stream %s now hangs on purpose", TEST_HANG_FILE_ENV, self.id)
        while True:  # deliberately ignores the stop flag: a call stuck in libav would too
            time.sleep(1.0)

    def _decode_error(self) -> None:
        self._errors_this_session += 1
        self._decode_errors.inc()
