"""The supervisor's publisher: internal PULL in, public XPUB out, stream states in between.

Producers and the worker PUSH to one internal PULL socket (stream.wire.push);
the `Forwarder` copies every label to the public socket. Why the extra hop: one
public socket for the whole pipeline (one port, one CURVE setup, one place that
counts messages_published_total, and a restarted worker never re-binds the
public port), and the supervisor sees every event, which is how it knows each
stream's state.

Events are not copied: what producers report goes into `StreamStates`
(stream.serve.states), the one owner of each stream's state, which publishes the
state it derives. The supervisor's own news (a stream added, the worker
gone or back, a stream removed, the pipeline stopping) arrives on the same
internal socket as `ctl.*` messages, so states change in this one thread, in the
order things happened.

The public socket is an XPUB: it sees each subscription, and answers a new
subscriber to `event.*` with the current state of every stream it matches (its
`t` is when that state began), so a client that connects late can tell a quiet
stream from a dead one at once. It drops messages for a subscriber whose queue
(`sndhwm`) is full, so a slow subscriber loses messages, never the pipeline's
time, and memory stays bounded by `sndhwm` messages per subscriber.

A `tap` (the stream API's stream.serve.api.tap.ResultsTap), when given, is
called in this thread with every message published, labels and events alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import zmq
from zmq.auth.thread import ThreadAuthenticator

from stream.config import PublishSection
from stream.metrics import PipelineMetrics
from stream.serve.states import StreamStates
from stream.wire.curve import serve_curve
from stream.wire.messages import (
    EVENT_PREFIX,
    LABEL_PREFIX,
    MessageError,
    decode,
    event_frames,
    event_topic,
)

log = logging.getLogger(__name__)

CONTROL_PREFIX = b"ctl."
_SUBSCRIBE = 1  # first byte of an XPUB subscription message (0: unsubscribe)


def control_frames(verb: str, **payload: Any) -> list[bytes]:
    """An internal message from the supervisor to the forwarder's states:
    `add(stream=..., t=now)`, `inference(available=bool)`,
    `remove(stream=..., detail=...)`, `stop(detail=...)`."""
    return [CONTROL_PREFIX + verb.encode(), msgpack.packb(payload, use_bin_type=True)]


class Forwarder:
    """The supervisor's publisher: binds the internal PULL and the public PUB, and
    a thread copies every message from one to the other.

    Each message is checked just enough to keep the public feed clean (two frames,
    a `label.`/`event.`/`ctl.` topic). Malformed messages are dropped and counted in
    `.malformed`. Both sockets are bound in the constructor, so a taken port fails
    there, in the caller's thread; after that only the forwarding thread touches
    them, and `states`, until `close()`. `stopped` is set once the final events of
    a `stop` went out.
    """

    POLL_MS = 100  # how soon close() is noticed

    def __init__(
        self,
        context: zmq.Context,
        internal_endpoint: str,
        publish: PublishSection,
        tap: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self._metrics: PipelineMetrics | None = None
        self._tap = tap
        self.states = StreamStates(self._publish_event)
        self.stopped = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._auth: ThreadAuthenticator | None = None
        self.forwarded = 0
        self._counted = 0  # of `forwarded`, how many messages_published_total has
        self.malformed = 0
        self._pull = context.socket(zmq.PULL)
        self._pub = context.socket(zmq.XPUB)
        try:
            self._pull.rcvhwm = publish.sndhwm
            self._pull.linger = 0
            self._pull.bind(internal_endpoint)
            self._pub.sndhwm = publish.sndhwm
            self._pub.linger = 0
            self._pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscribe, for welcomes
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

    def start(self, metrics: PipelineMetrics | None = None) -> Forwarder:
        """Forward from now on; `metrics` (made once the run's metrics directory
        exists) counts messages and records stream states."""
        self._metrics = metrics
        self.states.metrics = metrics
        self._thread = threading.Thread(target=self._run, name="adafocus-forwarder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        poller.register(self._pub, zmq.POLLIN)
        while not self._stop.is_set():
            self._count_published()
            ready = dict(poller.poll(self.POLL_MS))
            if self._pub in ready:
                self._subscriptions()
            if self._pull not in ready:
                continue
            # Drain what is queued, but come back to check _stop now and then.
            for _ in range(10_000):
                try:
                    frames = self._pull.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    self._take(frames)
                except Exception:  # a bug here must not stop forwarding for good
                    log.exception("forwarder failed on %r", frames[0][:80] if frames else b"")
        self._count_published()

    def _take(self, frames: list[bytes]) -> None:
        topic = frames[0] if frames else b""
        if len(frames) != 2:
            self._reject(f"{len(frames)} frame(s), topic {topic[:80]!r}")
        elif topic.startswith(LABEL_PREFIX.encode()):
            self._send(frames)
        elif topic.startswith(EVENT_PREFIX.encode()):
            try:
                _, payload = decode(frames)
            except MessageError as exc:
                self._reject(str(exc))
                return
            self.states.source(payload["stream"], payload["state"], payload["detail"],
                               payload["t"])
        elif topic.startswith(CONTROL_PREFIX):
            self._control(topic[len(CONTROL_PREFIX):].decode(), msgpack.unpackb(frames[1]))
        else:
            self._reject(f"topic {topic[:80]!r}")

    def _control(self, verb: str, payload: dict[str, Any]) -> None:
        if verb == "add":
            self.states.add(payload["stream"], payload["t"])
        elif verb == "inference":
            self.states.inference(payload["available"])
        elif verb == "remove":
            self.states.remove(payload["stream"], payload["detail"])
        elif verb == "stop":
            self.states.stop(payload["detail"])
            self.stopped.set()
        else:
            self._reject(f"control verb {verb!r}")

    def _subscriptions(self) -> None:
        """Welcome each new `event.*` subscriber with the current states."""
        while True:
            try:
                message = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not message or message[0] != _SUBSCRIBE:
                continue
            prefix = message[1:]
            for stream_id, state in self.states.snapshot().items():
                if event_topic(stream_id).startswith(prefix):
                    self._send(event_frames(stream_id, state.state, state.detail, state.since))

    def _publish_event(self, stream_id: str, state: str, detail: str, t: float) -> None:
        self._send(event_frames(stream_id, state, detail, t))

    def _send(self, frames: list[bytes]) -> None:
        # XPUB never blocks: a subscriber whose queue is full just misses this one.
        self._pub.send_multipart(frames, flags=zmq.NOBLOCK)
        if self._tap is not None:
            self._tap(frames)
        self.forwarded += 1

    def _count_published(self) -> None:
        """Add what was sent since the last call to messages_published_total: once
        per drain, not per message (each inc takes a lock and writes the metrics
        file, a visible share of this thread at thousands of labels a second)."""
        if self._metrics is not None and self.forwarded != self._counted:
            self._metrics.messages_published.inc(self.forwarded - self._counted)
            self._counted = self.forwarded

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
