"""The pipeline's HTTP server: uvicorn in one thread of the supervisor, with limits.

Why uvicorn: the hand-written http.server before it, tried as an attacker would,
held a thread per idle client for as long as the client liked, had a listen
backlog of 5, answered HEAD with 501 and held a TLS ClientHello open without a
word. uvicorn is the well-kept ASGI server (Starlette's and FastAPI's own), one
event loop serves every connection without a thread each, and its protocol
class is a documented extension point (`Config(http=...)`). What it lacks, a
deadline for reading a request, is added here:

- `read_timeout_s`: the whole request (head and body) must arrive within this
  time of the connection opening or of the previous response; a client that
  connects and says nothing, or trickles a byte now and then, is closed then;
- `idle_timeout_s`: a keep-alive connection with no new request is closed (uvicorn);
- a TLS ClientHello (this server speaks plain HTTP) is closed at once;
- `max_connections`: beyond it a new connection is closed at once, so file
  descriptors and memory stay bounded whatever clients do;
- `backlog`: the listen queue the kernel keeps (capped by net.core.somaxconn);
- `threads`: the pool that runs blocking handlers (metrics scrapes, API changes,
  preview rendering) never has more threads than this.

The socket is bound in `start()`, in the caller's thread: a port in use is an
OSError there, before anything else starts. Long responses (the live view's
event stream and previews) end when `close()` sets `closing`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a ClientHello


@dataclass(frozen=True)
class Limits:
    read_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    max_connections: int = 512
    backlog: int = 1024
    threads: int = 16


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a read deadline, a connection cap and no TLS."""

    read_timeout_s = Limits.read_timeout_s
    max_connections = Limits.max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._fresh = True
        self._read_deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.close()
            return
        self._arm_read_deadline()

    def data_received(self, data: bytes) -> None:
        if self._fresh and data[:1] == bytes([TLS_HANDSHAKE]):
            self.transport.close()  # TLS to a plain-HTTP port: no HTTP answer will do
            return
        self._fresh = False
        super().data_received(data)
        if self.conn.their_state is h11.DONE or self.conn.their_state is h11.MUST_CLOSE:
            self._disarm_read_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_read_deadline()  # the next request, if any, has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def _arm_read_deadline(self) -> None:
        self._disarm_read_deadline()
        self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if getattr(self, "_read_deadline", None) is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.conn.their_state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            self.transport.close()


def _protocol(limits: Limits) -> type[_GuardedH11]:
    return type("GuardedH11", (_GuardedH11,), {"read_timeout_s": limits.read_timeout_s,
                                                "max_connections": limits.max_connections})


class HttpService:
    """An ASGI `app` on host:port in a background thread. `closing` is set when
    `close()` begins, so endless responses can end."""

    START_TIMEOUT_S = 10.0

    def __init__(self, host: str, port: int, app: Any, limits: Limits = Limits(),
                 closing: threading.Event | None = None) -> None:
        self._address = (host, port)
        self._app = app
        self._limits = limits
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.closing = closing or threading.Event()

    def start(self) -> HttpService:
        """Bind and serve; raises OSError here if the port is taken."""
        self._socket = _listen(*self._address, self._limits.backlog)
        config = uvicorn.Config(
            self._app, http=_protocol(self._limits), ws="none", lifespan="off",
            log_config=None, access_log=False, server_header=False,
            timeout_keep_alive=self._limits.idle_timeout_s, timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),),
                                        name="adafocus-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise OSError(f"the HTTP server did not start within {self.START_TIMEOUT_S:g} s")
            time.sleep(0.01)
        if not self._server.started:
            raise OSError("the HTTP server stopped while starting")
        return self

    async def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        anyio.to_thread.current_default_thread_limiter().total_tokens = self._limits.threads
        await self._server.serve([self._socket])

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        assert self._socket is not None, "start() first"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self._address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port (within about 2 s, whatever clients do)."""
        self.closing.set()
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None

    def __enter__(self) -> HttpService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
