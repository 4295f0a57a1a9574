"""What the API says about a stream, built in one place for GET /streams and the
live page's events alike: its settings (URI masked), its state, its results.

`Api` is everything the routes read or change, handed over by the supervisor's
endpoints (stream.serve.endpoints): the stream states, the results tap, the
running streams and their rings, the changes, the producers' restart counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from stream.config import ApiSection, StreamSection
from stream.ingest.uri import mask_uri
from stream.metrics import PipelineMetrics
from stream.serve.api.auth import Guard
from stream.serve.api.changes import StreamChanges
from stream.serve.api.tap import ResultsTap, Tally
from stream.serve.states import StreamState, StreamStates


class Pipeline(Protocol):
    """What the supervisor lets the API see and ask (any thread)."""

    def stream_sections(self) -> dict[str, StreamSection]: ...

    def ring_name(self, stream_id: str) -> str | None: ...

    def reload_and_wait(self, timeout_s: float) -> str | None: ...


@dataclass(frozen=True)
class Api:
    settings: ApiSection
    pipeline: Pipeline
    states: StreamStates
    tap: ResultsTap
    changes: StreamChanges
    guard: Guard
    restarts: Callable[[], Mapping[str, int]]
    closing: threading.Event  # the server is stopping: endless responses end


class StreamView(BaseModel):
    """One stream as the API shows it (README.md, "Stream API")."""

    id: str
    uri: str  # masked: never a password or token
    transport: str
    realtime: bool
    lossless: bool
    state: str
    detail: str
    since: float | None  # unix time the state began
    fps: float  # labels published per second, lately
    label: str | None
    score: float | None
    patch: list[float] | None  # [x0, y0, x1, y1] in 0..1, the last patch looked at
    truth: str | None
    t_publish: float | None
    compute_saved: float | None  # 1 - GFLOPs spent / full-frame GFLOPs, since added
    restarts: int  # producer restarts after crashes


def producer_restarts(metrics: PipelineMetrics | None) -> dict[str, int]:
    """adafocus_process_restarts_total{process="producer"} per stream, as counted
    in this process (the supervisor restarts producers)."""
    found: dict[str, int] = {}
    if metrics is None:
        return found
    for family in metrics.process_restarts.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("process") == "producer":
                found[sample.labels["stream"]] = int(sample.value)
    return found


def stream_view(api: Api, section: StreamSection, state: StreamState | None,
                restarts: Mapping[str, int]) -> StreamView:
    tally = api.tap.tally(section.id) or Tally()
    return StreamView(
        id=section.id, uri=mask_uri(section.uri), transport=section.transport,
        realtime=section.realtime, lossless=section.lossless,
        state=state.state if state else "connecting", detail=state.detail if state else "",
        since=state.since if state else None, fps=round(tally.fps(api.tap.now()), 2),
        label=tally.label, score=tally.score, patch=tally.patch, truth=tally.truth,
        t_publish=tally.t_publish, compute_saved=tally.compute_saved(),
        restarts=restarts.get(section.id, 0),
    )


def stream_views(api: Api, only: set[str] | None = None) -> dict[str, StreamView]:
    """Every running stream (or those of `only` that run), by id."""
    sections = api.pipeline.stream_sections()
    api.tap.keep_only(set(sections))
    states = api.states.snapshot()
    restarts = api.restarts()
    return {sid: stream_view(api, section, states.get(sid), restarts)
            for sid, section in sorted(sections.items()) if only is None or sid in only}
