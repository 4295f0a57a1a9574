"""The pipeline's public side, owned by the supervisor: the results socket and HTTP.

`Endpoints.open` binds the internal PULL and public PUB (the Forwarder) and the
/metrics, /healthz, /livez server, so a port in use is a start-up error of one
line; `publish_event` sends the supervisor's own events through the same
internal hop as every producer's (one order per sender, and the forwarder sees
them for /healthz); `close` frees the ports and the ZeroMQ context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from stream.config import PipelineConfig
from stream.metrics import PipelineMetrics
from stream.serve.forwarder import Forwarder
from stream.serve.http import HealthState, MetricsServer
from stream.wire.messages import event_frames
from stream.wire.push import connect_push, send_nowait

log = logging.getLogger("adafocus.supervisor")


class EndpointError(RuntimeError):
    """A public port that cannot be bound; the message names the key."""


class Endpoints:
    """The forwarder (internal PULL -> public PUB), its PUSH for our own events,
    and the HTTP server."""

    def __init__(self) -> None:
        self._context: zmq.Context | None = None
        self._forwarder: Forwarder | None = None
        self._push: zmq.Socket | None = None
        self._http: MetricsServer | None = None
        self.publish_endpoint: str | None = None
        self.metrics_url: str | None = None

    def open(
        self,
        config: PipelineConfig,
        internal_endpoint: str,
        health: HealthState,
        on_event: Callable[[dict[str, Any]], None],
        metrics: PipelineMetrics,
    ) -> None:
        self._context = zmq.Context()
        try:
            self._forwarder = Forwarder(
                self._context, internal_endpoint, config.publish, on_event=on_event,
                metrics=metrics,
            ).start()
        except zmq.ZMQError as exc:
            raise EndpointError(f"publish.bind: cannot bind {config.publish.bind}: {exc}") from None
        self.publish_endpoint = self._forwarder.public_endpoint
        self._push = connect_push(self._context, internal_endpoint)
        m = config.metrics
        try:
            self._http = MetricsServer(m.host, m.port, health).start()
        except OSError as exc:
            raise EndpointError(
                f"metrics.bind: cannot serve on {m.bind}: {exc.strerror or exc}"
            ) from None
        self.metrics_url = self._http.url
        log.info("results on %s, metrics on %s/metrics, health on %s/healthz",
                 self.publish_endpoint, self.metrics_url, self.metrics_url)

    def publish_event(self, stream_id: str, state: str, detail: str) -> None:
        if self._push is not None:
            send_nowait(self._push, event_frames(stream_id, state, detail, time.time()))

    def close(self) -> None:
        if self._push is not None:
            self._push.close(linger=0)
            self._push = None
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._context is not None:
            self._context.term()
            self._context = None
