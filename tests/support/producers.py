"""What producer tests share: fast ingest settings, the test clip's shape, and the
internal event socket seen from a test (producers PUSH their events to it)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import zmq

from stream.config import IngestSection
from stream.wire.messages import decode

CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 100, 25, (320, 240)  # 4 s, keyframe every 10 frames

# Reconnect quickly and give up on stalls fast: test runs are short.
FAST = IngestSection(
    backoff_initial_s=0.2, backoff_max_s=1.0, stall_timeout_s=2.0, open_timeout_s=3.0
)


def read_all(ring) -> list:
    """Every unread frame of `ring` in order, as (meta, image copy)."""
    out = np.empty(ring.shape, np.uint8)
    frames = []
    while (meta := ring.read_next(out)) is not None:
        frames.append((meta, out.copy()))
    return frames


class EventSink:
    """A PULL socket producers PUSH their events to; remembers everything seen."""

    def __init__(self, context: zmq.Context):
        self.socket = context.socket(zmq.PULL)
        self.socket.linger = 0
        self.socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seen: list[dict[str, Any]] = []

    def _pump(self, timeout: float) -> None:
        if self.socket.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                kind, payload = decode(frames)
                assert kind == "event"
                self.seen.append(payload)

    def of(self, stream: str) -> list[dict[str, Any]]:
        self._pump(0)
        return [e for e in self.seen if e["stream"] == stream]

    def states(self, stream: str) -> list[str]:
        return [e["state"] for e in self.of(stream)]

    def wait_for(self, stream: str, state: str, timeout: float = 15.0, after: int = 0) -> dict:
        """The first `state` event of `stream` at position >= `after` in its history."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.of(stream)[after:]:
                if event["state"] == state:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {state!r} event from {stream!r} within {timeout:g} s; "
                    f"saw {self.of(stream)}"
                )
            self._pump(min(left, 0.1))
