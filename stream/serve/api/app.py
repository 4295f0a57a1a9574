"""The ASGI application: probes always, the stream API and live view when the
supervisor hands over an `Api` (tests of the probes alone leave it out).

Why FastAPI (on Starlette): the API's bodies are the config's pydantic models,
and FastAPI serves an OpenAPI schema from them (/openapi.json) with no second
description of the API to keep in step; routes, dependencies (authentication)
and streaming responses come from Starlette, a small, well-kept ASGI toolkit.
The interactive /docs page is off: it loads its scripts from a CDN.

Every error answers `{"problems": ["key.path: problem", ...]}`, the config
file's own form, whatever raised it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from stream.serve.api.live import STATIC, Viewers, live_routes
from stream.serve.api.preview import preview_routes
from stream.serve.api.probes import probes
from stream.serve.api.streams import stream_routes
from stream.serve.api.views import Api
from stream.serve.health import HealthState


class _DroppedViewer(logging.Filter):
    """uvicorn logs an error when an app returns before its response ended; this
    app does that only when it drops a viewer that stopped reading (and says so
    itself, stream.serve.api.live), so the line would only mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def build_app(health: HealthState, registry: Callable[[], CollectorRegistry],
              api: Api | None = None) -> FastAPI:
    app = FastAPI(title="adafocus-stream", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if api is not None else None)
    app.include_router(probes(health, registry))
    if api is not None:
        viewers = Viewers(api.settings.max_viewers)
        app.include_router(stream_routes(api))
        app.include_router(preview_routes(api, viewers))
        app.include_router(live_routes(api, viewers))
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_exception_handler(HTTPException, _http_problem)
    logging.getLogger("uvicorn.error").addFilter(_DroppedViewer())
    return app


async def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, list) else [str(exc.detail)]
    return JSONResponse({"problems": detail}, exc.status_code, headers=exc.headers)

