"""GET /metrics, /healthz and /livez, served from the supervisor process.

/metrics aggregates every process's metric files (client_python multiprocess
mode), building the registry per request as client_python documents, so values
of children that started after the server are included. /healthz answers from
a `HealthState` the supervisor keeps current: 200 when every stream is up and
the worker ticked within its hang timeout, 503 otherwise, with a JSON body that
names what is not healthy (for people and for Kubernetes probes alike).

/livez is the liveness half of that: 200 while the worker ticks within its hang
timeout, whatever the streams do. A camera that is down is the camera's
problem; restarting the pipeline (a liveness failure) would stop every other
stream too and bring that one back no sooner. Readiness uses /healthz.

The server is a ThreadingHTTPServer in one thread with an explicit lifetime:
`start()` binds (port 0 picks a free port), `close()` stops it and frees the
port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from stream.metrics import multiprocess_registry


class HealthState:
    """What /healthz reports: each stream's last state and the worker's last tick.

    The supervisor updates it from two threads (the forwarder calls `on_event` for
    every `event.*` message; the supervisor loop calls `worker_ticked`) and the
    HTTP threads read it, so every access holds one lock. Times are
    `time.monotonic()` seconds (system-wide on Linux, so a tick time read from
    another process compares correctly).
    """

    def __init__(
        self,
        stream_ids: Iterable[str],
        hang_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hang_timeout_s = hang_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._streams = {sid: {"state": "connecting", "detail": ""} for sid in stream_ids}
        self._last_tick: float | None = None

    def set_stream(self, stream_id: str, state: str, detail: str = "") -> None:
        """Record a stream's state; streams this supervisor does not run are ignored
        (a stray message must not make the service unhealthy)."""
        with self._lock:
            if stream_id in self._streams:
                self._streams[stream_id] = {"state": state, "detail": detail}

    def set_streams(self, stream_ids: Iterable[str]) -> None:
        """Follow a config reload: streams that stay keep their state, new ones
        start as `connecting`, removed ones stop counting."""
        with self._lock:
            self._streams = {
                sid: self._streams.get(sid, {"state": "connecting", "detail": ""})
                for sid in stream_ids
            }

    def on_event(self, payload: dict[str, Any]) -> None:
        """The Forwarder's `on_event` callback: a decoded `event.*` payload."""
        self.set_stream(payload["stream"], payload["state"], payload.get("detail", ""))

    def worker_ticked(self, at: float | None = None) -> None:
        """The worker finished a loop iteration at `at` (monotonic; default now)."""
        with self._lock:
            self._last_tick = self._clock() if at is None else at

    def _worker(self, last_tick: float | None) -> tuple[list[str], dict[str, Any]]:
        """(problems, the body's `worker` part) from the last tick time."""
        age = None if last_tick is None else max(0.0, self._clock() - last_tick)
        problems = []
        if age is None:
            problems.append("worker has not ticked yet")
        elif age > self.hang_timeout_s:
            problems.append(
                f"worker last ticked {age:.1f} s ago (hang timeout {self.hang_timeout_s:g} s)"
            )
        return problems, {"last_tick_age_s": age, "hang_timeout_s": self.hang_timeout_s}

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, JSON-ready body): every stream up and the worker ticking."""
        with self._lock:
            streams = {sid: dict(s) for sid, s in self._streams.items()}
            last_tick = self._last_tick
        problems = [
            f"stream {sid} is {s['state']}" + (f": {s['detail']}" if s["detail"] else "")
            for sid, s in streams.items()
            if s["state"] != "up"
        ]
        worker_problems, worker = self._worker(last_tick)
        problems += worker_problems
        body = {"healthy": not problems, "problems": problems, "streams": streams, "worker": worker}
        return not problems, body

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, JSON-ready body): the worker ticking, streams ignored."""
        with self._lock:
            last_tick = self._last_tick
        problems, worker = self._worker(last_tick)
        return not problems, {"alive": not problems, "problems": problems, "worker": worker}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung scraper must not keep close() waiting

    def __init__(
        self,
        address: tuple[str, int],
        health: HealthState,
        registry: Callable[[], CollectorRegistry],
    ) -> None:
        super().__init__(address, _Handler)
        self.health = health
        self.registry = registry


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept"))
            self._reply(HTTPStatus.OK, content_type, encoder(self.server.registry()))
        elif path in ("/healthz", "/livez"):
            health = self.server.health
            good, body = health.report() if path == "/healthz" else health.liveness()
            status = HTTPStatus.OK if good else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, "application/json", json.dumps(body).encode())
        else:
            self._reply(HTTPStatus.NOT_FOUND, "text/plain", b"try /metrics, /healthz or /livez\n")

    def _reply(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: Prometheus scrapes every few seconds; access lines would drown
        the supervisor's log."""


class MetricsServer:
    """/metrics, /healthz and /livez on host:port in a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        health: HealthState,
        registry: Callable[[], CollectorRegistry] = multiprocess_registry,
    ) -> None:
        self._address = (host, port)
        self._health = health
        self._registry = registry
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve; raises OSError here if the port is taken."""
        self._server = _Server(self._address, self._health, self._registry)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="adafocus-http",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
