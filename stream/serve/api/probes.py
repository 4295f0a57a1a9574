"""GET (and HEAD) /metrics, /healthz and /livez: what Prometheus and the probes read.

/metrics aggregates every process's metric files (client_python multiprocess
mode), building the registry per request as client_python documents, so values
of children that started after the server are included, and leaves out streams
that are no longer configured. /healthz and /livez answer from a `HealthState`
(stream.serve.health). None of them needs a token: a scraper and a kubelet
probe must work whatever the API's authentication says.

The handlers are plain functions: FastAPI runs them in its thread pool, so
reading the metric files never holds up the event loop (and the live view).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from stream.serve.health import HealthState


def probes(health: HealthState, registry: Callable[[], CollectorRegistry]) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.head("/metrics", include_in_schema=False)
    @router.get("/metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus text format (or OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(request.headers.get("accept"))
        return Response(encoder(registry()), media_type=content_type)

    @router.head("/healthz", include_in_schema=False)
    @router.get("/healthz")
    def healthz() -> JSONResponse:
        """Readiness: 200 when every stream is up and the worker ticks, 503 otherwise."""
        good, body = health.report()
        return JSONResponse(body, 200 if good else 503)

    @router.head("/livez", include_in_schema=False)
    @router.get("/livez")
    def livez() -> JSONResponse:
        """Liveness: 200 while the worker ticks, whatever the cameras do."""
        good, body = health.liveness()
        return JSONResponse(body, 200 if good else 503)

    return router
