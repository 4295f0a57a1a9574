"""The pipeline's public side, owned by the supervisor: the results socket and HTTP.

`Endpoints.open` binds the internal PULL and public XPUB (the Forwarder) and the
HTTP server (/metrics, /healthz, /livez, the stream API and live view:
stream.serve.api), so a port in use is a start-up error of one line, before
anything shared (the metrics directory) is touched; `start` begins forwarding
once the run's metrics exist. The forwarder hands every message it publishes to
the API's results tap. The supervisor talks to the stream
states through `control` and `report`: both go through the same internal hop as
every producer's events, so the forwarder's thread sees everything in order.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from stream.config import PipelineConfig
from stream.metrics import PipelineMetrics, scrape_registry
from stream.serve.api.app import build_app
from stream.serve.api.auth import Guard, TokenFileError, Tokens, is_loopback
from stream.serve.api.changes import StreamChanges
from stream.serve.api.server import HttpService
from stream.serve.api.tap import ResultsTap
from stream.serve.api.views import Api, Pipeline, producer_restarts
from stream.serve.forwarder import Forwarder, control_frames
from stream.serve.health import HealthState
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
        self._http: HttpService | None = None
        self._metrics: PipelineMetrics | None = None
        self.health: HealthState | None = None
        self.publish_endpoint: str | None = None
        self.metrics_url: str | None = None

    def open(self, config: PipelineConfig, internal_endpoint: str, pipeline: Pipeline,
             config_path: Path | None) -> None:
        """Bind everything; EndpointError naming the key when a port is taken or
        the token file is unusable."""
        self._context = zmq.Context()
        tap = ResultsTap()
        try:
            self._forwarder = Forwarder(self._context, internal_endpoint, config.publish, tap)
        except zmq.ZMQError as exc:
            raise EndpointError(f"publish.bind: cannot bind {config.publish.bind}: {exc}") from None
        self.publish_endpoint = self._forwarder.public_endpoint
        self._push = connect_push(self._context, internal_endpoint)
        states = self._forwarder.states
        self.health = HealthState(states.snapshot, config.worker.hang_timeout_s)
        m = config.metrics
        try:
            guard = Guard(Tokens(config.api.token_file), open_reads=is_loopback(m.host))
        except TokenFileError as exc:
            raise EndpointError(str(exc)) from None
        closing = threading.Event()
        api = Api(
            settings=config.api, pipeline=pipeline, states=states, tap=tap,
            changes=StreamChanges(config_path, config.shard, pipeline.reload_and_wait),
            guard=guard, restarts=lambda: producer_restarts(self._metrics), closing=closing,
        )
        app = build_app(self.health, lambda: scrape_registry(states.configured), api)
        try:
            self._http = HttpService(m.host, m.port, app, closing=closing).start()
        except OSError as exc:
            raise EndpointError(
                f"metrics.bind: cannot serve on {m.bind}: {exc.strerror or exc}"
            ) from None
        self.metrics_url = self._http.url
        log.info("results on %s, metrics on %s/metrics, health on %s/healthz, streams "
                 "and live view on %s/", self.publish_endpoint, self.metrics_url,
                 self.metrics_url, self.metrics_url)

    def start(self, metrics: PipelineMetrics) -> None:
        """Forward from now on (the run's metrics directory exists)."""
        assert self._forwarder is not None
        self._metrics = metrics
        self._forwarder.start(metrics)

    def control(self, verb: str, **payload: Any) -> None:
        """News for the stream states (stream.serve.forwarder.control_frames)."""
        if self._push is not None:
            send_nowait(self._push, control_frames(verb, **payload))

    def report(self, stream_id: str, state: str, detail: str) -> None:
        """A source state on behalf of a producer that cannot say it any more."""
        if self._push is not None:
            send_nowait(self._push, event_frames(stream_id, state, detail, time.time()))

    def final_events(self, detail: str, timeout_s: float) -> None:
        """A last `down` for every stream still live, and the moment the socket
        needs to put them on the wire (at most `timeout_s`)."""
        if self._forwarder is None or self._push is None:
            return
        self.control("stop", detail=detail)
        self._forwarder.stopped.wait(timeout_s)
        time.sleep(0.2)  # the XPUB's queue drains before close(linger=0) drops it

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


def warn_if_exposed(config: PipelineConfig) -> None:
    """One warning line per endpoint bound beyond loopback without protection:
    an explicit choice, but one an operator should see in the log."""
    bind = config.publish.bind
    if bind.startswith("tcp://") and config.publish.curve is None and not is_loopback(
        bind[len("tcp://"):].rsplit(":", 1)[0]
    ):
        log.warning("publish.bind %s is beyond loopback without CURVE: anyone who can reach "
                    "it can read every label (set publish.curve)", bind)
    if not is_loopback(config.metrics.host):
        api = ("need a token" if config.api.token_file is not None
               else "refuse every call (no api.token_file)")
        log.warning("metrics.bind %s is beyond loopback: /metrics and /healthz are served "
                    "without authentication; the stream API and live view %s",
                    config.metrics.bind, api)

