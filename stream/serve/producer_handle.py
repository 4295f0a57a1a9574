"""The supervisor's handle on one stream: its frame ring and its producer process.

The supervisor creates the ring (only it creates and unlinks segments, see
stream.ring) and the handle keeps the producer writing into it: started, reaped
when it exits, restarted with backoff after a crash, given up after a crash loop,
stopped with SIGTERM then SIGKILL. How a producer ended decides what happens
next (stream.exitcodes): a file that ended or a source that failed permanently
is not restarted, since a restart would only repeat it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from stream.config import IngestSection, StreamSection
from stream.exitcodes import EXIT_OK, EXIT_PERMANENT
from stream.ingest.producer import run_producer
from stream.ingest.uri import mask_uri
from stream.metrics import PipelineMetrics, mark_process_dead, producer_identifier
from stream.ring import FrameRing
from stream.serve.children import (
    RestartPolicy,
    child_main,
    exit_text,
    spawn_context,
    stop_process,
)

log = logging.getLogger("adafocus.supervisor")


@dataclass(frozen=True)
class ProducerExit:
    """What became of a producer that exited: the stream's next state and why.
    `state` is None when the producer already said so itself (ended, down)."""

    state: str | None
    detail: str


class ProducerHandle:
    """One stream: its ring, and the producer process feeding it."""

    def __init__(
        self,
        section: StreamSection,
        ring: FrameRing,
        slot: int,
        events_endpoint: str,
        policy: RestartPolicy,
        log_level: int,
        metrics: PipelineMetrics,
    ) -> None:
        self.section = section
        self.ring = ring
        # names the producer's metric files; unique among the running streams
        self.slot = slot
        self._events_endpoint = events_endpoint
        self._policy = policy
        self._log_level = log_level
        self._restarts = metrics.process_restarts.labels("producer", section.id)
        self._mp = spawn_context()
        self._backoff = policy.backoff()
        self._process: BaseProcess | None = None
        self._started = 0.0
        self._restart_at: float | None = None
        self.finished = False  # ended, permanently down or given up: not restarted

    @property
    def id(self) -> str:
        return self.section.id

    def handles(self) -> list[Any]:
        return [self._process.sentinel] if self._process is not None else []

    def start(self, ingest: IngestSection) -> None:
        process = self._mp.Process(
            target=child_main,
            args=(
                self._log_level,
                producer_identifier(self.slot),
                run_producer,
                self.section,
                self.ring.name,
                self._events_endpoint,
                ingest,
            ),
            name=f"adafocus-producer-{self.id}",
            daemon=True,
        )
        process.start()
        self._process = process
        self._started = time.monotonic()
        self._restart_at = None
        log.info("started producer for stream %s (pid %d): %s", self.id, process.pid,
                 mask_uri(self.section.uri))

    def restart_with(self, section: StreamSection, ingest: IngestSection) -> None:
        """A changed configuration: a fresh producer and a fresh backoff."""
        self.stop(time.monotonic() + self._policy.stop_grace_s)
        self.section = section
        self.finished = False
        self._backoff = self._policy.backoff()
        self.start(ingest)

    def terminate(self) -> None:
        """SIGTERM without waiting: shutdown signals every producer first, then reaps."""
        if self._process is not None and self._process.exitcode is None:
            self._process.terminate()

    def poll(self, ingest: IngestSection) -> ProducerExit | None:
        """Reap a producer that exited and decide its future; start one whose
        restart delay passed. Returns what became of an exited producer."""
        now = time.monotonic()
        outcome = None
        if self._process is not None and self._process.exitcode is not None:
            outcome = self._exited(now)
        if self._restart_at is not None and now >= self._restart_at:
            self.start(ingest)
        return outcome

    def stop(self, deadline: float) -> None:
        """Stop the producer: SIGKILL if it is still there at `deadline` (monotonic)."""
        if self._process is not None:
            stop_process(self._process, producer_identifier(self.slot), deadline)
            self._process = None
        self._restart_at = None

    def release(self) -> None:
        """Stop the producer and free the ring (the stream is gone for good)."""
        self.stop(time.monotonic() + self._policy.stop_grace_s)
        self.ring.close()
        self.ring.unlink()

    def _exited(self, now: float) -> ProducerExit:
        process = self._process
        assert process is not None and process.pid is not None
        code = process.exitcode
        process.join()
        mark_process_dead(producer_identifier(self.slot))
        self._process = None
        if code == EXIT_OK:
            self.finished = True
            log.info("stream %s: producer finished (source ended)", self.id)
            return ProducerExit(None, "source ended")
        if code == EXIT_PERMANENT:
            self.finished = True
            log.warning("stream %s: source failed permanently; not restarting", self.id)
            return ProducerExit(None, "source failed permanently")
        delay = self._backoff.next_delay(now, now - self._started)
        what = f"producer (pid {process.pid}) {exit_text(code)}"
        if delay is None:
            self.finished = True
            detail = (f"{what}; {self._backoff.tries} restarts within "
                      f"{self._policy.window_s:g} s, giving up until the config changes")
            log.error("stream %s: %s", self.id, detail)
            return ProducerExit("down", detail)
        detail = f"{what}; restarting in {delay:.1f} s"
        log.warning("stream %s: %s", self.id, detail)
        self._restarts.inc()
        self._restart_at = now + delay
        return ProducerExit("reconnecting", detail)
