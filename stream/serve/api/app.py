"""The ASGI application: the probes (/metrics, /healthz, /livez).

Why FastAPI (on Starlette): the stream API to come takes the config's pydantic
models as bodies, and FastAPI serves an OpenAPI schema from them with no second
description of the API to keep in step; routes, dependencies and streaming
responses come from Starlette, a small, well-kept ASGI toolkit.

Every error answers `{"problems": ["key.path: problem", ...]}`, the config
file's own form, whatever raised it.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from stream.serve.api.probes import probes
from stream.serve.health import HealthState


def build_app(health: HealthState, registry: Callable[[], CollectorRegistry]) -> FastAPI:
    app = FastAPI(title="adafocus-stream", version="1", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(probes(health, registry))
    app.add_exception_handler(HTTPException, _http_problem)
    return app


async def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, list) else [str(exc.detail)]
    return JSONResponse({"problems": detail}, exc.status_code, headers=exc.headers)
