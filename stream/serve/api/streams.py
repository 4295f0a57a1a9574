"""The stream API: list, read, add, change and remove streams at run time.

    GET    /streams          every stream this pipeline serves
    GET    /streams/{id}     one: settings (URI masked), state, labels/s, last
                             label and score, compute saved, restarts
    POST   /streams          add one (body: a `streams` entry of the config file)
    PUT    /streams/{id}     change one (restarts that stream only)
    DELETE /streams/{id}     remove one (`down` event, ring freed, series gone)

Bodies are validated by the config file's own StreamSection; a problem is a 422
naming each key (`{"problems": ["uri: ..."]}`). A change is persisted and
applied through the supervisor's reload (stream.serve.api.changes) before the
answer, so a 201 or 200 means the stream runs with its new settings. Changes
block on a reload, so they run in the thread pool, never on the event loop.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from stream.config import StreamSection
from stream.serve.api.changes import ChangeError
from stream.serve.api.views import Api, StreamView, stream_views

MAX_BODY = 64 * 1024
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": StreamSection.model_json_schema()}}}}


class StreamList(BaseModel):
    streams: list[StreamView]


async def json_body(request: Request) -> Any:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, [f"body: larger than {MAX_BODY // 1024} KiB"])
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPException(422, ["body: not JSON"]) from None


def stream_routes(api: Api) -> APIRouter:
    router = APIRouter(prefix="/streams", tags=["streams"])
    read = [Depends(api.guard.read)]
    write = [Depends(api.guard.write)]

    def view(stream_id: str) -> StreamView:
        found = stream_views(api, {stream_id}).get(stream_id)
        if found is None:
            raise HTTPException(404, [f"no stream {stream_id!r}"])
        return found

    async def change(call: Any, *args: Any) -> StreamSection | None:
        try:
            return await run_in_threadpool(call, *args)
        except ChangeError as exc:
            raise HTTPException(exc.status, exc.problems) from None

    @router.get("", dependencies=read)
    def list_streams() -> StreamList:
        return StreamList(streams=list(stream_views(api).values()))

    @router.get("/{stream_id}", dependencies=read)
    def get_stream(stream_id: str) -> StreamView:
        return view(stream_id)

    @router.post("", status_code=201, dependencies=write, openapi_extra=_BODY)
    async def add_stream(request: Request, response: Response) -> StreamView:
        section = await change(api.changes.add, await json_body(request))
        assert section is not None
        response.headers["Location"] = f"/streams/{section.id}"
        return await run_in_threadpool(view, section.id)

    @router.put("/{stream_id}", dependencies=write, openapi_extra=_BODY)
    async def change_stream(stream_id: str, request: Request) -> StreamView:
        await change(api.changes.replace, stream_id, await json_body(request))
        return await run_in_threadpool(view, stream_id)

    @router.delete("/{stream_id}", status_code=204, dependencies=write)
    async def remove_stream(stream_id: str) -> Response:
        await change(api.changes.remove, stream_id)
        return Response(status_code=204)

    return router
