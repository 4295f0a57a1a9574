"""CPU cost per frame of the ring and of publishing, measured in isolation.

The producer and the worker each do several things per frame inside one
process; /proc gives their totals only. The ring copy and the label message are
small, deterministic pieces of code whose cost does not depend on load, so they
are timed here (thread CPU time, same code, same frame size) and subtracted
from the process totals (stream.bench.analysis.cpu_split_ms).
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import zmq

from adafocus.interface import StepResult
from stream.bench.analysis import FrameCosts
from stream.infer.worker import CATCH_UP_FRAMES
from stream.ring import FrameRing, ring_name
from stream.wire.messages import label_frames
from stream.wire.push import send_nowait


def measure(height: int, width: int, frames: int = 400) -> FrameCosts:
    write, read = _ring(height, width, frames)
    return FrameCosts(ring_write=write, ring_read=read, publish=_publish(frames))


def _ring(height: int, width: int, frames: int) -> tuple[float, float]:
    ring = FrameRing.create(ring_name("bench-costs", uuid.uuid4().hex[:8]), 8, height, width)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = np.empty_like(image)
    write = read = 0.0
    try:
        for seq in range(frames):
            t0 = time.thread_time()
            ring.write(image, seq, seq / 25.0, time.time())
            t1 = time.thread_time()
            ring.read_recent(out, CATCH_UP_FRAMES)  # the worker's read of a live stream
            write += t1 - t0
            read += time.thread_time() - t1
    finally:
        ring.close()
        ring.unlink()
    return write / frames, read / frames


def inproc_pair(context: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
    """(PULL, PUSH) connected on a fresh inproc endpoint: the worker's internal hop
    to the supervisor, without a supervisor."""
    endpoint = f"inproc://bench-{uuid.uuid4().hex}"
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    push = context.socket(zmq.PUSH)
    push.connect(endpoint)
    return pull, push


def _publish(frames: int) -> float:
    """label_frames + send_nowait, as the worker does per result (the receiving
    side drains in between so the queue never fills)."""
    result = StepResult(class_id=3, label="3", score=0.9, topk=[(str(k), 0.1) for k in range(5)],
                        patch=(0.1, 0.2, 0.4, 0.5), skipped=False, action="full", gflops=0.03,
                        gflops_full=0.17)
    context = zmq.Context()
    pull, push = inproc_pair(context)
    spent = 0.0
    try:
        for seq in range(frames):
            t0 = time.thread_time()
            send_nowait(push, label_frames("cam-00", seq, seq / 25.0, time.time(), result))
            spent += time.thread_time() - t0
            pull.recv_multipart()
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        context.term()
    return spent / frames
