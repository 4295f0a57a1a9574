"""A small Python client for the pipeline's results: connect, filter, iterate.

    with Subscriber("tcp://127.0.0.1:5556", streams=["cam-1"], timeout=5) as sub:
        for message in sub:
            print(message.stream, message.payload["label"])

ZeroMQ topics filter by prefix, so subscribing to `label.cam-1` also delivers
`label.cam-10`; the client therefore checks the stream id exactly as well.
Messages that do not follow the schema are skipped and counted (`.malformed`),
because one bad sender should not crash every dashboard listening.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from stream.wire.curve import connect_curve
from stream.wire.messages import EVENT_PREFIX, LABEL_PREFIX, MessageError, decode


@dataclass(frozen=True)
class CurveClient:
    """Keys for a CURVE-secured publisher: this client's certificate (the
    `.key_secret` file made by zmq.auth.create_certificates, whose public half the
    server must list in its authorized_clients folder) and the server's public
    key file (`.key`)."""

    secret_key_file: Path
    server_key_file: Path


@dataclass(frozen=True)
class Message:
    kind: str  # "label" or "event"
    stream: str
    payload: dict[str, Any]


class Subscriber:
    """A SUB socket with an explicit lifetime (use as a context manager).

    `streams=None` means every stream; `events=True` also delivers `event.*`
    state changes. `timeout` (seconds, None = wait for ever) is how long
    iteration waits for the next message before it ends.
    """

    def __init__(
        self,
        endpoint: str,
        streams: Iterable[str] | None = None,
        events: bool = False,
        curve: CurveClient | None = None,
        timeout: float | None = None,
        *,
        rcvhwm: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        self.streams = None if streams is None else frozenset(streams)
        self.timeout = timeout
        self.malformed = 0
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.SUB)
        self._socket.linger = 0
        self._socket.rcvhwm = rcvhwm
        if curve is not None:
            connect_curve(self._socket, curve.secret_key_file, curve.server_key_file)
        prefixes = [LABEL_PREFIX] + ([EVENT_PREFIX] if events else [])
        for prefix in prefixes:
            for stream in sorted(self.streams) if self.streams is not None else [""]:
                self._socket.setsockopt(zmq.SUBSCRIBE, (prefix + stream).encode())
        self._socket.connect(endpoint)

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next matching message, or None when `timeout` seconds pass first
        (None waits for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_ms = None
            if deadline is not None:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            frames = self._socket.recv_multipart()
            try:
                kind, payload = decode(frames)
            except MessageError:
                self.malformed += 1
                continue
            if self.streams is None or payload["stream"] in self.streams:
                return Message(kind, payload["stream"], payload)

    def __iter__(self) -> Iterator[Message]:
        """Messages until none arrives for `timeout` seconds."""
        while (message := self.recv(self.timeout)) is not None:
            yield message

    def close(self) -> None:
        self._socket.close(linger=0)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
