"""GET /metrics, /healthz and /livez, served from the supervisor process.

/metrics aggregates every process's metric files (client_python multiprocess
mode), building the registry per request as client_python documents, so values
of children that started after the server are included, and leaves out streams
that are no longer configured. /healthz and /livez answer from a `HealthState`
(stream.serve.health).

The server is a ThreadingHTTPServer in one thread with an explicit lifetime:
`start()` binds (port 0 picks a free port), `close()` stops it and frees the
port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from stream.metrics import scrape_registry
from stream.serve.health import HealthState


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
        registry: Callable[[], CollectorRegistry] = scrape_registry,
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
