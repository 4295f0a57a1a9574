"""The internal hop: producers and the worker PUSH messages to the supervisor.

Producers and the worker never talk to subscribers directly. They PUSH
`[topic, payload]` messages (stream.wire.messages) to one internal PULL socket
the supervisor binds (stream.serve.forwarder), which copies them to the public
PUB socket. Nothing here ever blocks a sender: `send_nowait` drops a message
when the internal queue is full and says so, so a slow supervisor costs
messages (counted by the caller), never inference or decode time.
"""

from __future__ import annotations

from collections.abc import Sequence

import zmq


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
