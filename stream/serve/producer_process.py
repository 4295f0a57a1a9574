"""The supervisor's handle on one producer process and the streams it ingests.

A producer process (stream.ingest.group) runs several streams in threads; this
handle starts it with its streams, passes stream changes down its control pipe,
reads what it reports (a stream ended, crashed or hung), and reaps it. What to do
about an exit (restart with backoff, give up) is the pool's business
(stream.serve.producer_pool): it owns the streams and their states.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from stream.backoff import Backoff
from stream.config import IngestSection, StreamSection
from stream.ingest.group import run_producer_group
from stream.ingest.uri import mask_uri
from stream.metrics import mark_process_dead, producer_identifier
from stream.ring import FrameRing
from stream.serve.children import RestartPolicy, child_main, spawn_context, stop_process

log = logging.getLogger("adafocus.supervisor")


@dataclass
class PoolStream:
    """One stream of the pool: its configuration and ring, and where it stands."""

    section: StreamSection
    ring: FrameRing
    backoff: Backoff  # restarts of its ingest thread after a crash
    finished: bool = False  # ended or permanently down: not restarted until the config changes
    restart_at: float | None = None  # when a crashed ingest thread is started again

    @property
    def id(self) -> str:
        return self.section.id


@dataclass
class ExitNews:
    """What the pool learns when a process ended: its pid, exit code, how long it
    ran, and the streams that said they hung before it exited."""

    pid: int
    code: int
    ran_s: float
    hung: dict[str, str] = field(default_factory=dict)


class ProducerProcess:
    """One producer process: `slot` names its metric files (stream.metrics)."""

    def __init__(self, slot: int, events_endpoint: str, policy: RestartPolicy,
                 log_level: int) -> None:
        self.slot = slot
        self.streams: dict[str, PoolStream] = {}
        self.ingest: IngestSection | None = None  # the settings it runs with
        self.backoff = policy.backoff()
        self.restart_at: float | None = None
        self._events_endpoint = events_endpoint
        self._policy, self._log_level = policy, log_level
        self._mp = spawn_context()
        self._process: BaseProcess | None = None
        self._control: Connection | None = None
        self._started = 0.0
        self._hung: dict[str, str] = {}

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def live(self) -> list[PoolStream]:
        """Its streams that are to be ingested (not finished)."""
        return [s for s in self.streams.values() if not s.finished]

    def handles(self) -> list[Any]:
        """What `multiprocessing.connection.wait` should watch for news."""
        return [] if self._process is None else [self._process.sentinel, self._control]

    def start(self, ingest: IngestSection) -> None:
        """Spawn the process with every live stream (one waiting to restart after a
        crash of its thread starts now too: the whole process is new)."""
        ours, theirs = self._mp.Pipe(duplex=True)
        for stream in self.live:
            stream.restart_at = None
        streams = [(s.section, s.ring.name) for s in self.live]
        process = self._mp.Process(
            target=child_main,
            args=(self._log_level, producer_identifier(self.slot), run_producer_group, streams,
                  self._events_endpoint, ingest, theirs),
            name=f"adafocus-producer-{self.slot}",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its end; ours sees EOF when it dies
        self._process, self._control = process, ours
        self.ingest, self._started, self.restart_at = ingest, time.monotonic(), None
        log.info("started producer process %d (pid %d) for %d stream(s)", self.slot, process.pid,
                 len(streams))
        for section, _ in streams:
            self._log_start(section)

    def add(self, stream: PoolStream) -> None:
        """Ingest one more stream in the running process."""
        self.send(("add", stream.section, stream.ring.name))
        self._log_start(stream.section)

    def send(self, command: tuple) -> None:
        """Tell the running process about a change. A process that is down starts
        again with its current streams, so a failed send needs no retry."""
        if self._process is None or self._process.exitcode is not None:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError included
            self._control.send(command)

    def messages(self) -> list[tuple]:
        """What the process reported since the last call (a hang is kept for `reap`)."""
        out = []
        if self._control is None:
            return out
        try:
            while self._control.poll():
                message = self._control.recv()
                if message[0] == "hung":
                    self._hung[message[1]] = message[2]
                out.append(message)
        except (EOFError, OSError):
            pass  # it died; reap sees the exit code
        return out

    def reap(self) -> ExitNews | None:
        """The news of a process that exited (reaped, its metric files released)."""
        process = self._process
        if process is None or process.exitcode is None:
            return None
        self.messages()
        process.join()
        mark_process_dead(producer_identifier(self.slot))
        news = ExitNews(process.pid, process.exitcode, time.monotonic() - self._started,
                        self._hung)
        self._close()
        return news

    def terminate(self) -> None:
        """SIGTERM without waiting: shutdown signals every process first, then reaps."""
        if self._process is not None and self._process.exitcode is None:
            self._process.terminate()

    def stop(self, deadline: float) -> None:
        """Stop the process: SIGKILL if it is still there at `deadline` (monotonic)."""
        if self._process is not None:
            stop_process(self._process, producer_identifier(self.slot), deadline)
            self._close()
        self.restart_at = None

    def _close(self) -> None:
        if self._control is not None:
            self._control.close()
        self._process = self._control = None
        self._hung = {}

    def _log_start(self, section: StreamSection) -> None:
        assert self._process is not None
        log.info("started producer for stream %s (pid %d): %s", section.id, self._process.pid,
                 mask_uri(section.uri))
