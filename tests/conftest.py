"""The fixtures every level of test shares: frame rings, an H.264 clip, a real RTSP
server, the internal event socket and producer processes, all bounded in time and
cleaned up. The helpers behind them live in tests/support.

ADAFOCUS_REQUIRE_RTSP=1 (set by CI) turns "no RTSP server available" from a
skip into a failure, so CI cannot pass by skipping the RTSP tests.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from stream.config import IngestSection, StreamSection
from stream.ingest.group import run_producer
from stream.ring import NAME_PREFIX, SHM_DIR, FrameRing, pid_alive, ring_name
from tests.support.producers import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, FAST, EventSink
from tests.support.rtsp import RtspServer, gst_rtsp_problem, require_rtsp

# ----------------------------------------------------------------- /dev/shm hygiene


def _orphaned_segments() -> set[str]:
    """Ring segments nobody will clean up: created by this process (the session is
    over) or by one that is gone. Live creators (another session on the same
    machine) still own theirs."""
    if not SHM_DIR.is_dir():
        return set()
    orphans = set()
    for path in SHM_DIR.glob(NAME_PREFIX + "*"):
        pid = int(path.name.split("_")[1])  # ring_name(): afr_<creator pid>_...
        if pid == os.getpid() or not pid_alive(pid):
            orphans.add(path.name)
    return orphans


@pytest.fixture(scope="session", autouse=True)
def no_leftover_shared_memory():
    """Every ring a test creates must be gone from /dev/shm when the session ends.
    A dead creator's resource tracker unlinks its segments a moment after it
    exits, hence the short grace period."""
    before = _orphaned_segments()
    yield
    deadline = time.monotonic() + 3.0
    while (left := _orphaned_segments() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"shared memory segments left in {SHM_DIR}: {sorted(left)}"


@pytest.fixture
def make_ring():
    """make_ring(slots, height, width) -> an owned FrameRing, unlinked at teardown."""
    rings: list[FrameRing] = []

    def make(slots: int = 8, height: int = 64, width: int = 64) -> FrameRing:
        name = ring_name(f"test-{uuid.uuid4().hex[:8]}", "s")
        ring = FrameRing.create(name, slots, height, width)
        rings.append(ring)
        return ring

    yield make
    for ring in rings:
        ring.close()
        if (SHM_DIR / ring.name).exists():  # a test may have unlinked it already
            ring.unlink()


# ----------------------------------------------------------------- media


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory) -> Path:
    """4 s of ffmpeg's testsrc (a frame counter and moving content, so every frame
    differs), 320x240 H.264 in MP4, a keyframe every 10 frames, no B-frames (like
    a camera), one slice per frame, moov first (a truncated copy stays playable)."""
    if shutil.which("ffmpeg") is None:
        require_rtsp("ffmpeg is not installed (tests/system-deps.sh)")
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    w, h = CLIP_SIZE
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={CLIP_FPS}",
         "-frames:v", str(CLIP_FRAMES), "-c:v", "libx264", "-preset", "ultrafast",
         "-g", "10", "-bf", "0", "-threads", "1", "-pix_fmt", "yuv420p",
         "-movflags", "+faststart", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture
def corrupt_h264_clip(h264_clip, tmp_path) -> Path:
    """A copy of `h264_clip` with 300 random bytes every 6000 through its middle
    half: packets fail to decode there, the start and the end still play."""
    data = bytearray(h264_clip.read_bytes())
    rng = np.random.default_rng(0)
    for offset in range(len(data) // 4, len(data) * 3 // 4, 6000):
        data[offset : offset + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    return bad


# ----------------------------------------------------------------- RTSP server


@pytest.fixture(scope="session")
def gst_rtsp() -> None:
    problem = gst_rtsp_problem()
    if problem:
        require_rtsp(problem)


@pytest.fixture
def rtsp_server(gst_rtsp, h264_clip, tmp_path):
    """rtsp_server(silent=False, mount="/clip") -> a started RtspServer serving the
    clip (or accepting and never answering); killed at teardown."""
    servers: list[RtspServer] = []

    def start(silent: bool = False, mount: str = "/clip") -> RtspServer:
        server = RtspServer(tmp_path, None if silent else h264_clip, mount, silent)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.kill()


# ----------------------------------------------------------------- events, producers


@pytest.fixture
def events():
    context = zmq.Context()
    sink = EventSink(context)
    yield sink
    sink.socket.close()
    context.term()


@pytest.fixture
def start_producer(events):
    """start_producer(stream_id, uri, ring, ingest=FAST, max_attempts=None, **options)
    -> a running producer process (spawn, as the supervisor starts them); killed at
    teardown. `options` are StreamSection keys (transport, realtime)."""
    ctx = multiprocessing.get_context("spawn")
    processes: list[multiprocessing.Process] = []

    def start(stream_id: str, uri: str, ring: FrameRing, ingest: IngestSection = FAST,
              max_attempts: int | None = None, **options: Any) -> multiprocessing.Process:
        # Unvalidated: the producer must survive what config validation would refuse.
        stream = StreamSection.model_construct(id=stream_id, uri=uri, **options)
        process = ctx.Process(
            target=run_producer, args=(stream, ring.name, events.endpoint, ingest),
            kwargs={"max_attempts": max_attempts}, daemon=True,
        )
        process.start()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(10)

