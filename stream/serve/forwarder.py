"""The supervisor's publisher: internal PULL in, public PUB out.

Producers and the worker PUSH to one internal PULL socket (stream.wire.push);
the `Forwarder` copies every message to the public PUB socket. Why the extra
hop: one public socket for the whole pipeline (one port, one CURVE setup, one
place that counts messages_published_total, and a restarted worker never
re-binds the public port), and the supervisor sees every `event.*` message,
which is how it knows each stream's state for /healthz.

The PUB socket drops messages for a subscriber whose queue (`sndhwm`) is full,
so a slow subscriber loses messages, never the pipeline's time, and memory stays
bounded by `sndhwm` messages per subscriber.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from stream.config import PublishSection
from stream.metrics import PipelineMetrics
from stream.wire.curve import serve_curve
from stream.wire.messages import EVENT_PREFIX, LABEL_PREFIX, MessageError, decode

log = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


class Forwarder:
    """The supervisor's publisher: binds the internal PULL and the public PUB, and
    a thread copies every message from one to the other.

    Each message is checked just enough to keep the public feed clean (two frames,
    a `label.`/`event.` topic; events are decoded and handed to `on_event`, which
    the supervisor uses to track stream states). Malformed messages are dropped and
    counted in `.malformed`. Both sockets are bound in the constructor, so a taken
    port fails there, in the caller's thread; after that only the forwarding thread
    touches them until `close()`.
    """

    POLL_MS = 100  # how soon close() is noticed

    def __init__(
        self,
        context: zmq.Context,
        internal_endpoint: str,
        publish: PublishSection,
        *,
        on_event: EventCallback | None = None,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self._on_event = on_event
        self._metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._auth: ThreadAuthenticator | None = None
        self.forwarded = 0
        self.malformed = 0
        self._pull = context.socket(zmq.PULL)
        self._pub = context.socket(zmq.PUB)
        try:
            self._pull.rcvhwm = publish.sndhwm
            self._pull.linger = 0
            self._pull.bind(internal_endpoint)
            self._pub.sndhwm = publish.sndhwm
            self._pub.linger = 0
            if publish.curve is not None:
                curve = publish.curve
                self._auth = serve_curve(
                    context, self._pub, curve.server_secret_key, curve.authorized_clients
                )
            self._pub.bind(publish.bind)
        except Exception:
            self._close_sockets()
            raise
        self.internal_endpoint: str = self._pull.last_endpoint.decode()
        self.public_endpoint: str = self._pub.last_endpoint.decode()

    def start(self) -> Forwarder:
        self._thread = threading.Thread(target=self._run, name="adafocus-forwarder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self.POLL_MS):
                continue
            # Drain what is queued, but come back to check _stop now and then.
            for _ in range(10_000):
                try:
                    frames = self._pull.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._forward(frames)

    def _forward(self, frames: list[bytes]) -> None:
        topic = frames[0] if frames else b""
        if len(frames) != 2 or not topic.startswith((LABEL_PREFIX.encode(), EVENT_PREFIX.encode())):
            self._reject(f"{len(frames)} frame(s), topic {topic[:80]!r}")
            return
        if topic.startswith(EVENT_PREFIX.encode()):
            try:
                _, payload = decode(frames)
            except MessageError as exc:
                self._reject(str(exc))
                return
            if self._on_event is not None:
                try:
                    self._on_event(payload)
                except Exception:  # a bug in the callback must not stop forwarding
                    log.exception("event callback failed on %s", topic)
        # PUB never blocks: a subscriber whose queue is full just misses this one.
        self._pub.send_multipart(frames, flags=zmq.NOBLOCK)
        self.forwarded += 1
        if self._metrics is not None:
            self._metrics.messages_published.inc()

    def _reject(self, why: str) -> None:
        self.malformed += 1
        if self.malformed == 1:  # one line, not a flood, when a sender is broken
            log.warning("dropping malformed message (%s); further ones are only counted", why)

    def close(self) -> None:
        """Stop the thread and close both sockets (and the authenticator); the
        ports are free when this returns."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close_sockets()

    def _close_sockets(self) -> None:
        self._pull.close(linger=0)
        self._pub.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
