"""Many streams per producer process: one ingest thread per stream.

Why: a producer process per stream cost 88 MB of RSS for an RTSP camera and
132 MB for a synthetic one (an interpreter with numpy, ZeroMQ, PyAV and the
pipeline's modules), so a host ran out of memory long before it ran out of
decode. Decoding and scaling run in libav without the GIL (PyAV releases it), so
the threads of one process decode on several cores at once, and a process
serves `ingest.streams_per_process` streams.

Isolation inside a process: every stream has its own thread, event socket,
reconnect backoff and stall watchdog (its source's timeouts), so a stream that
fails, reconnects, stalls or ends touches no other. Two things threads cannot
isolate, and a process restart must: a call stuck inside libav (a thread cannot
be killed) and a crash of the interpreter (a segfault in a decoder). The first is
found here: a thread past its `Producer.deadline` makes the process tell the
supervisor which stream hung and exit with EXIT_HUNG; the second is a crash. The
supervisor restarts the process either way and its other streams reconnect
(counted, evented): that is the price `streams_per_process` sets (1 gives every
stream a process of its own, as before).

Control, over the supervisor's pipe (stream.serve.producer_process): in
("add", StreamSection, ring name) and ("remove", stream id); out ("ended", id,
exit code) when a stream's loop ended by itself (its own `ended` or `down` event
said why), ("crashed", id, detail) and ("hung", id, detail).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import zmq

from stream.config import IngestSection, StreamSection
from stream.exitcodes import EXIT_CRASH, EXIT_HUNG, EXIT_OK, EXIT_PERMANENT
from stream.ingest.producer import Producer
from stream.ingest.uri import SourceError, parse_source
from stream.metrics import CpuMeter, PipelineMetrics
from stream.ring import FrameRing
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait

log = logging.getLogger(__name__)

# Not configuration: how long a stopping stream's thread may take to leave its
# source, how often the main thread looks around, and how many events queue per
# stream while the supervisor is slow.
STOP_GRACE_S = 0.5
POLL_S = 0.1
CPU_EVERY_S = 1.0
EVENTS_HWM = 1000


@dataclass
class _Member:
    """One stream of the process: its loop, thread and stop flag."""

    producer: Producer
    ring: FrameRing
    events: zmq.Socket
    stop: threading.Event
    thread: threading.Thread | None = None
    outcome: list[tuple[int, str]] = field(default_factory=list)  # (code, crash detail)


class ProducerGroup:
    """The streams of one producer process, each in its own thread."""

    def __init__(self, context: zmq.Context, events_endpoint: str, ingest: IngestSection,
                 metrics: PipelineMetrics, max_attempts: int | None = None) -> None:
        self._context, self._endpoint = context, events_endpoint
        self._ingest, self._metrics, self._max_attempts = ingest, metrics, max_attempts
        self._members: dict[str, _Member] = {}

    def __len__(self) -> int:
        return len(self._members)

    def add(self, section: StreamSection, ring_name: str) -> int | None:
        """Start ingesting `section` into the ring. Returns EXIT_PERMANENT (after a
        `down` event) when the URI or the ring cannot be used, else None."""
        events = connect_push(self._context, self._endpoint, hwm=EVENTS_HWM)
        try:
            source = parse_source(section.uri, section.source_options)
            ring = FrameRing.attach(ring_name)
        except (SourceError, OSError, ValueError) as exc:  # bad URI; ring missing or foreign
            what = str(exc) if isinstance(exc, SourceError) else f"frame ring: {exc}"
            log.warning("stream %s down: %s", section.id, what)
            send_nowait(events, event_frames(section.id, "down", what, time.time()))
            events.close()
            return EXIT_PERMANENT
        stop = threading.Event()
        producer = Producer(section.id, source, ring, events, self._metrics, self._ingest, stop,
                            self._max_attempts)
        member = _Member(producer, ring, events, stop)
        member.thread = threading.Thread(target=_run, args=(member,), name=f"ingest-{section.id}",
                                         daemon=True)
        self._members[section.id] = member
        member.thread.start()
        return None

    def remove(self, stream_id: str) -> bool:
        """Stop a stream; False when its thread did not leave its source within
        STOP_GRACE_S (stuck inside libav: it still writes, so the process must go)."""
        member = self._members.pop(stream_id, None)
        if member is None:
            return True
        member.stop.set()
        member.thread.join(STOP_GRACE_S)
        return not member.thread.is_alive()

    def reap(self) -> list[tuple[str, int, str]]:
        """(stream, exit code, crash detail) of every stream whose loop ended."""
        done = [(sid, m) for sid, m in self._members.items() if m.outcome]
        for sid, _ in done:
            del self._members[sid]
        return [(sid, *m.outcome[0]) for sid, m in done]

    def hung(self) -> list[tuple[str, str]]:
        """(stream, detail) of every stream whose thread is past its deadline."""
        now = time.monotonic()
        return [(sid, f"stuck inside its source (no progress {m.producer.grace_s:g} s past its "
                      "timeouts)") for sid, m in self._members.items() if now > m.producer.deadline]

    def stop_all(self) -> bool:
        """Stop every stream at once; False when a thread did not leave its source."""
        for member in self._members.values():
            member.stop.set()
        deadline = time.monotonic() + STOP_GRACE_S
        for member in self._members.values():
            member.thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [sid for sid, m in self._members.items() if m.thread.is_alive()]
        for sid in stuck:
            log.warning("stream %s: ingest thread still busy after stop; leaving without it", sid)
        return not stuck


def _run(member: _Member) -> None:
    """A stream's thread: its loop, then its ring and socket closed. An unexpected
    exception is logged once and reported as a crash, not a silent dead thread."""
    code, detail = EXIT_CRASH, ""
    try:
        code = member.producer.run()
    except Exception as exc:
        log.exception("stream %s: producer crashed", member.producer.id)
        detail = f"ingest thread crashed ({type(exc).__name__})"
    finally:
        member.ring.close()
        member.events.close()  # lingers up to the socket's linger for a final event
        member.outcome.append((code, detail))


def run_producer_group(streams: Sequence[tuple[StreamSection, str]], events_endpoint: str,
                       ingest: IngestSection, control: Connection | None = None, *,
                       max_attempts: int | None = None) -> None:
    """Process target (spawn): ingest `streams` ((section, ring name) pairs) until
    SIGTERM/SIGINT, or until the supervisor's end of `control` closes. Without
    `control` (one stream run on its own) it exits with that stream's outcome
    (0 ended or stopped, 3 permanent, 1 crashed); a hung stream exits EXIT_HUNG.
    `max_attempts`: reconnects in a row before a stream gives up; None: never."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    context = zmq.Context()
    metrics = PipelineMetrics()
    cpu = CpuMeter(metrics, "producer")
    group = ProducerGroup(context, events_endpoint, ingest, metrics, max_attempts)
    status = EXIT_OK
    for section, ring_name in streams:
        status = group.add(section, ring_name) or status
    counted = time.monotonic()
    try:
        while not stop.is_set():
            if control is None:
                if not group:
                    break
                stop.wait(POLL_S)
            elif control.poll(POLL_S):
                verb, *args = control.recv()
                if not _apply(group, control, verb, args):
                    status = EXIT_HUNG
                    break
            for sid, code, detail in group.reap():
                status = code
                _tell(control, ("crashed", sid, detail) if detail else ("ended", sid, code))
            hung = group.hung()
            if hung:
                for sid, detail in hung:
                    log.error("stream %s: %s; restarting its process", sid, detail)
                    _tell(control, ("hung", sid, detail))
                status = EXIT_HUNG
                break
            if time.monotonic() - counted >= CPU_EVERY_S:
                cpu.update()
                counted = time.monotonic()
    except (EOFError, OSError):
        pass  # the supervisor is gone: nothing left to ingest for
    cpu.update()
    if not group.stop_all():
        os._exit(status)  # a thread stuck inside libav: leave without it
    context.term()
    sys.exit(status)


def _apply(group: ProducerGroup, control: Connection, verb: str, args: list[Any]) -> bool:
    """One command from the supervisor; False when a removed stream would not stop."""
    if verb == "add":
        section, ring_name = args
        if group.add(section, ring_name) is not None:
            _tell(control, ("ended", section.id, EXIT_PERMANENT))
    elif verb == "remove":
        (stream_id,) = args
        if not group.remove(stream_id):
            _tell(control, ("hung", stream_id, "did not stop when removed: stuck inside its "
                                               "source (libav did not return)"))
            return False
    else:
        log.error("producer: unknown control command %r ignored", verb)
    return True


def _tell(control: Connection | None, message: tuple) -> None:
    if control is not None:
        control.send(message)


def run_producer(stream: StreamSection, ring_name: str, events_endpoint: str,
                 ingest: IngestSection, *, max_attempts: int | None = None) -> None:
    """Process target: one stream on its own (tests, the ingest bench); exits with
    its outcome (see run_producer_group)."""
    run_producer_group([(stream, ring_name)], events_endpoint, ingest,
                       max_attempts=max_attempts)
