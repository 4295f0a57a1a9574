"""Getting results and events out: the internal PUSH side and the public PUB side.

Producers and the worker never talk to subscribers directly. They PUSH
`[topic, payload]` messages (stream.messages) to one internal PULL socket the
supervisor binds, and the supervisor's `Forwarder` copies every message to the
public PUB socket. Why the extra hop: one public socket for the whole pipeline
(one port, one CURVE setup, one place that counts messages_published_total),
and the supervisor sees every `event.*` message, which is how it knows each
stream's state for /healthz.

Nothing here ever blocks a sender. `send_nowait` drops a message when the
internal queue is full (and says so); the PUB socket drops messages for a
subscriber whose queue (`sndhwm`) is full, so a slow subscriber loses messages,
never the pipeline's time, and the publisher's memory stays bounded by
`sndhwm` messages per subscriber.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from stream.config import CurveSection, PublishSection
from stream.messages import (
    EVENT_PREFIX,
    LABEL_PREFIX,
    SCHEMA_VERSION,
    MessageError,
    decode,
    encode,
    label_topic,
)
from stream.metrics import PipelineMetrics

log = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]


class StepResultLike(Protocol):
    """What `label_frames` needs from adafocus.StepResult (kept structural so this
    module does not import the model library and its PyTorch)."""

    label: str
    class_id: int
    score: float
    topk: Sequence[tuple[str, float]]
    patch: tuple[float, float, float, float] | None
    skipped: bool
    gflops: float
    gflops_full: float


def label_frames(
    stream_id: str,
    seq: int,
    pts: float | None,
    t_capture: float,
    result: StepResultLike,
    truth: str | None = None,
) -> list[bytes]:
    """A ready-to-send `label.<stream>` message (DESIGN.md v1), stamped `t_publish`
    now. `truth` (the ground-truth class name, known for synthetic cameras) is
    added only when given."""
    payload: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "stream": stream_id,
        "seq": int(seq),
        "pts": None if pts is None else float(pts),
        "t_capture": float(t_capture),
        "t_publish": time.time(),
        "label": str(result.label),
        "class_id": int(result.class_id),
        "score": float(result.score),
        "topk": [[str(name), float(p)] for name, p in result.topk],
        "patch": None if result.patch is None else [float(v) for v in result.patch],
        "skipped": bool(result.skipped),
        "gflops": float(result.gflops),
        "gflops_full": float(result.gflops_full),
    }
    if truth is not None:
        payload["truth"] = str(truth)
    return [label_topic(stream_id), encode(payload)]


# ----------------------------------------------------------------------------- PUSH side


def connect_push(
    context: zmq.Context, endpoint: str, hwm: int = 1000, linger_ms: int = 1000
) -> zmq.Socket:
    """A PUSH socket to the supervisor's internal PULL, for producers and the worker.

    `hwm` bounds what queues while the supervisor is slow or not there yet; beyond
    it `send_nowait` drops. `linger_ms` lets a final `ended`/`down` event sent just
    before the process exits still reach the supervisor, without letting `close()`
    hang for ever when the supervisor is gone."""
    socket = context.socket(zmq.PUSH)
    socket.sndhwm = hwm
    socket.linger = linger_ms
    socket.connect(endpoint)
    return socket


def send_nowait(socket: zmq.Socket, frames: Sequence[bytes]) -> bool:
    """Send one multipart message without ever blocking; False when it was dropped
    because the queue is full (the caller counts that, it must not wait)."""
    try:
        socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
    except zmq.Again:
        return False
    return True


# ----------------------------------------------------------------------------- PUB side


def load_server_keys(secret_key_file: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a zmq.auth certificate file (`*.key_secret`)."""
    public, secret = zmq.auth.load_certificate(secret_key_file)
    if not secret:
        raise ValueError(f"{secret_key_file}: has no secret key (use the .key_secret file)")
    return public, secret


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
                self._auth = self._secure(context, self._pub, publish.curve)
            self._pub.bind(publish.bind)
        except Exception:
            self._close_sockets()
            raise
        self.internal_endpoint: str = self._pull.last_endpoint.decode()
        self.public_endpoint: str = self._pub.last_endpoint.decode()

    @staticmethod
    def _secure(context: zmq.Context, pub: zmq.Socket, curve: CurveSection) -> ThreadAuthenticator:
        """CURVE server keys on the PUB, and a ZAP authenticator that admits only
        the client public keys found in `authorized_clients` (without it, CURVE
        would encrypt but let any key pair in)."""
        public, secret = load_server_keys(curve.server_secret_key)
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve(domain="*", location=str(curve.authorized_clients))
        pub.curve_publickey = public
        pub.curve_secretkey = secret
        pub.curve_server = True
        return auth

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
