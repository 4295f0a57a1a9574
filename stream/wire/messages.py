"""The wire format of results and events, version 1 (README.md, "Contracts: result
messages").

Multipart `[topic, payload]`: topic `label.<stream>` or `event.<stream>`,
payload one msgpack map. Publishers and subscribers both go through this module
so the schema lives in one place.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgpack

from adafocus.interface import StepResult  # torch-free: the publisher never loads PyTorch

SCHEMA_VERSION = 1
LABEL_PREFIX = "label."
EVENT_PREFIX = "event."
STATES = ("connecting", "up", "stalled", "reconnecting", "down", "ended")

LABEL_KEYS = (
    "v", "stream", "seq", "pts", "t_capture", "t_publish", "label", "class_id", "score",
    "topk", "patch", "skipped", "gflops", "gflops_full",
)
EVENT_KEYS = ("v", "stream", "t", "state", "detail")


class MessageError(ValueError):
    """A message that does not follow the v1 schema."""


def label_topic(stream_id: str) -> bytes:
    return (LABEL_PREFIX + stream_id).encode()


def event_topic(stream_id: str) -> bytes:
    return (EVENT_PREFIX + stream_id).encode()


def encode(payload: Mapping[str, Any]) -> bytes:
    return msgpack.packb(dict(payload), use_bin_type=True)


def event_frames(stream_id: str, state: str, detail: str, t: float) -> list[bytes]:
    """A ready-to-send event. `detail` must already be free of credentials."""
    if state not in STATES:
        raise MessageError(f"unknown stream state {state!r}; expected one of {STATES}")
    payload = {"v": SCHEMA_VERSION, "stream": stream_id, "t": t, "state": state, "detail": detail}
    return [event_topic(stream_id), encode(payload)]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """Split and validate one multipart message; returns (kind, payload) where kind
    is "label" or "event"."""
    if len(frames) != 2:
        raise MessageError(f"expected 2 frames [topic, payload], got {len(frames)}")
    topic = frames[0].decode("utf-8", errors="replace")
    try:
        payload = msgpack.unpackb(frames[1], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise MessageError(f"payload of {topic!r} is not msgpack: {exc}") from exc
    if not isinstance(payload, dict):
        raise MessageError(f"payload of {topic!r} is not a map")
    if topic.startswith(LABEL_PREFIX):
        kind, keys = "label", LABEL_KEYS
    elif topic.startswith(EVENT_PREFIX):
        kind, keys = "event", EVENT_KEYS
    else:
        raise MessageError(f"unknown topic {topic!r}")
    missing = [k for k in keys if k not in payload]
    if missing:
        raise MessageError(f"{kind} message on {topic!r} lacks {missing}")
    if payload["v"] != SCHEMA_VERSION:
        raise MessageError(f"schema version {payload['v']} is not {SCHEMA_VERSION}")
    if topic != (LABEL_PREFIX if kind == "label" else EVENT_PREFIX) + payload["stream"]:
        raise MessageError(f"topic {topic!r} does not match stream {payload['stream']!r}")
    return kind, payload


def label_frames(
    stream_id: str,
    seq: int,
    pts: float | None,
    t_capture: float,
    result: StepResult,
    truth: str | None = None,
) -> list[bytes]:
    """A ready-to-send `label.<stream>` message (schema v1, README.md "Contracts:
    result messages"), stamped `t_publish` now. `truth` (the ground-truth class
    name, known for synthetic cameras) is added only when given."""
    payload: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "stream": stream_id,
        "seq": int(seq),
        "pts": None if pts is None else float(pts),
        "t_capture": float(t_capture),
        "t_publish": time.time(),
        "label": str(result.label),
        "class_id": int(result.class_id),
        "score": float(result.score),
        "topk": [[str(name), float(p)] for name, p in result.topk],
        "patch": None if result.patch is None else [float(v) for v in result.patch],
        "skipped": bool(result.skipped),
        "gflops": float(result.gflops),
        "gflops_full": float(result.gflops_full),
    }
    if truth is not None:
        payload["truth"] = str(truth)
    return [label_topic(stream_id), encode(payload)]
