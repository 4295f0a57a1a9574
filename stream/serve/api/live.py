"""The live view: the page at /, its event stream, and what every endless
response shares (a cap on viewers, a send deadline, an end at shutdown).

GET /events is a server-sent event stream fed by the results tap
(stream.serve.api.tap), not polled: first `streams` (every stream's view, as
GET /streams gives it), then `stream` (one stream's new view) whenever a
stream's label or state changed, at most `PUSH_HZ` times a second per watcher
however fast labels come, and `removed` when a stream left. A comment line every
`KEEPALIVE_S` keeps proxies from closing a quiet stream.

Viewers (event streams and previews together) are capped at `api.max_viewers`;
one more gets 503. A viewer that stops reading is dropped once a write has
waited `SEND_TIMEOUT_S`, so stalled viewers cannot keep their slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from stream.serve.api.views import Api, stream_views

PUSH_HZ = 10
KEEPALIVE_S = 15.0
SEND_TIMEOUT_S = 10.0
CLOSING_CHECK_S = 0.5  # how soon an endless response notices the server stopping
STATIC = resources.files("stream.serve.api") / "static"
log = logging.getLogger("adafocus.api")


class Viewers:
    """How many endless responses are open; at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.count = 0

    @contextlib.contextmanager
    def slot(self) -> Any:
        with self._lock:
            if self.count >= self.limit:
                raise HTTPException(503, [f"{self.limit} viewers already (api.max_viewers)"])
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


class LiveResponse(Response):
    """Streams `chunks` until they end, the client leaves, a write waits longer
    than SEND_TIMEOUT_S or the server stops. Takes a viewer slot for its life."""

    def __init__(self, chunks: Callable[[], AsyncIterator[bytes]], media_type: str,
                 viewers: Viewers, closing: threading.Event) -> None:
        # Not Response.__init__: it would announce a Content-Length of 0.
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._chunks = chunks
        self._viewers = viewers
        self._closing = closing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with self._viewers.slot():
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if scope["method"] == "HEAD" or await self._stream(receive, send):
                await send({"type": "http.response.body", "body": b""})

    async def _stream(self, receive: Any, send: Any) -> bool:
        """True when the response may be ended politely (not for a stalled client)."""
        gone = asyncio.ensure_future(_disconnect(receive))
        chunks = self._chunks()
        step: asyncio.Future[bytes | None] | None = None
        try:
            while not self._closing.is_set():
                step = asyncio.ensure_future(anext(chunks, None))
                while not (step.done() or gone.done() or self._closing.is_set()):
                    await asyncio.wait({step, gone}, timeout=CLOSING_CHECK_S,
                                       return_when=asyncio.FIRST_COMPLETED)
                if gone.done():
                    return False
                if not step.done():
                    return True  # the server is stopping
                chunk = step.result()
                if chunk is None:
                    return True
                try:
                    await asyncio.wait_for(send({"type": "http.response.body", "body": chunk,
                                                 "more_body": True}), SEND_TIMEOUT_S)
                except asyncio.TimeoutError:
                    log.info("dropped a live viewer that stopped reading for %g s",
                             SEND_TIMEOUT_S)
                    return False
            return True
        finally:
            gone.cancel()
            if step is not None and not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await step
            await chunks.aclose()


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(api: Api) -> AsyncIterator[bytes]:
    """The live page's event stream (see the module docstring)."""
    watch = api.tap.watch()
    try:
        views = await run_in_threadpool(stream_views, api)
        yield sse("streams", {"streams": [v.model_dump() for v in views.values()]})
        while True:
            changed = await watch.changed(KEEPALIVE_S)
            if not changed:
                yield b": keep-alive\n\n"
                continue
            views = await run_in_threadpool(stream_views, api, changed)
            for sid in sorted(changed):
                view = views.get(sid)
                yield sse("stream", view.model_dump()) if view else sse("removed", {"id": sid})
            await asyncio.sleep(1.0 / PUSH_HZ)
    finally:
        api.tap.unwatch(watch)


def live_routes(api: Api, viewers: Viewers) -> APIRouter:
    router = APIRouter(tags=["live view"])

    @router.head("/", include_in_schema=False)
    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The live page (static: the data comes from /events and the previews)."""
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    read = {"dependencies": [Depends(api.guard.read)], "response_class": LiveResponse,
            "status_code": 200}

    @router.head("/events", include_in_schema=False, **read)
    @router.get("/events", **read)
    def event_stream() -> LiveResponse:
        """Server-sent events: `streams`, then `stream` and `removed` as they happen."""
        return LiveResponse(lambda: events(api), "text/event-stream", viewers, api.closing)

    @router.post("/session", status_code=204)
    def session(request: Request, response: Response) -> None:
        """Trade `Authorization: Bearer <token>` for the live page's session cookie."""
        api.guard.login(request, response)

    return router
