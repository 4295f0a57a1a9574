"""GET /streams/{id}/preview.mjpeg: what the model sees, live, in any browser.

Each part of the multipart/x-mixed-replace response is the stream's newest
frame as the worker gets it (resized to the model's input), enlarged to be
seen, with the last patch the model looked at drawn as a box and the label and
score written on it. Frames are read with `FrameRing.peek_latest`, which never
moves the worker's position in the ring, at most `api.preview_fps` a second and
only when a new frame arrived; rendering and JPEG encoding run in the thread
pool. Nothing of this runs while nobody watches: there is no preview without a
request. The preview ends when its stream is removed (the ring's mapping is
closed with it, so the shared memory is really freed) and follows the stream's
new ring when a change rebuilt it.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from PIL import Image, ImageDraw, ImageFont

from stream.ring import SHM_DIR, FrameMeta, FrameRing
from stream.serve.api.live import LiveResponse, Viewers
from stream.serve.api.tap import Tally
from stream.serve.api.views import Api

BOUNDARY = "frame"
MIN_SIDE = 384  # frames are enlarged (by a whole factor) to at least this
BOX = (255, 196, 0)
JPEG_QUALITY = 80


def render(frame: np.ndarray, tally: Tally | None) -> bytes:
    """`frame` (H, W, 3 RGB) enlarged, the patch boxed, the label written; JPEG."""
    height, width = frame.shape[:2]
    factor = max(1, -(-MIN_SIDE // max(height, width)))
    image = Image.fromarray(frame).resize((width * factor, height * factor), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    size = image.size
    if tally is not None and tally.patch is not None:
        x0, y0, x1, y1 = (v * size[i % 2] for i, v in enumerate(tally.patch))
        draw.rectangle((x0, y0, x1, y1), outline=BOX, width=max(2, size[0] // 128))
    text = "no label yet" if tally is None or tally.label is None else (
        f"{tally.label}  {tally.score:.2f}")
    font = ImageFont.load_default(size=max(12, size[1] // 16))
    left, top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, right + 6, bottom + 4), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class RingPeek:
    """The stream's current ring, mapped while a preview runs; remapped when the
    supervisor replaced it (a new segment under the same name)."""

    def __init__(self, api: Api, stream_id: str) -> None:
        self._api = api
        self._id = stream_id
        self._ring: FrameRing | None = None
        self._inode: int | None = None
        self._frame: np.ndarray | None = None

    def peek(self) -> tuple[np.ndarray, FrameMeta] | None:
        """The newest frame; None when there is none yet. KeyError: no stream."""
        name = self._api.pipeline.ring_name(self._id)
        if name is None:
            raise KeyError(self._id)
        try:
            inode = os.stat(SHM_DIR / name).st_ino
            if self._ring is None or inode != self._inode:
                self.close()
                self._ring, self._inode = FrameRing.attach(name), inode
                self._frame = np.empty(self._ring.shape, np.uint8)
        except (FileNotFoundError, ValueError):
            return None  # unlinked or still being made this instant: look again next time
        assert self._frame is not None
        meta = self._ring.peek_latest(self._frame)
        return None if meta is None else (self._frame, meta)

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None


async def preview_parts(api: Api, stream_id: str) -> AsyncIterator[bytes]:
    ring = RingPeek(api, stream_id)
    interval = 1.0 / api.settings.preview_fps
    shown: tuple[int, int] | None = None
    try:
        while True:
            try:
                got = ring.peek()
            except KeyError:
                return  # the stream was removed
            if got is not None and (got[1].epoch, got[1].seq) != shown:
                frame, meta = got
                shown = (meta.epoch, meta.seq)
                jpeg = await run_in_threadpool(render, frame, api.tap.tally(stream_id))
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                       f"Content-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"
            await asyncio.sleep(interval)
    finally:
        ring.close()


def preview_routes(api: Api, viewers: Viewers) -> APIRouter:
    router = APIRouter(tags=["live view"])

    path = "/streams/{stream_id}/preview.mjpeg"
    read = {"dependencies": [Depends(api.guard.read)], "response_class": LiveResponse,
            "status_code": 200}

    @router.head(path, include_in_schema=False, **read)
    @router.get(path, **read)
    def preview(stream_id: str) -> LiveResponse:
        """MJPEG of the stream's frames with the focus patch and the label drawn."""
        if api.pipeline.ring_name(stream_id) is None:
            raise HTTPException(404, [f"no stream {stream_id!r}"])
        return LiveResponse(lambda: preview_parts(api, stream_id),
                            f"multipart/x-mixed-replace; boundary={BOUNDARY}", viewers,
                            api.closing)

    return router
