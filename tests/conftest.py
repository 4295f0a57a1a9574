"""Shared fixtures: a real RTSP server, an H.264 clip, an event sink, frame
rings and producer processes, all bounded in time and cleaned up.

ADAFOCUS_REQUIRE_RTSP=1 (set by CI) turns "no RTSP server available" from a
skip into a failure, so CI cannot pass by skipping the RTSP tests.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from stream.bench import rtsp_camera
from stream.config import IngestSection, StreamSection
from stream.ingest.producer import run_producer
from stream.ring import NAME_PREFIX, SHM_DIR, FrameRing, ring_name
from stream.wire.messages import decode

REQUIRE_RTSP_ENV = "ADAFOCUS_REQUIRE_RTSP"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(rtsp_camera.__file__)
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 100, 25, (320, 240)  # 4 s, keyframe every 10 frames

# Reconnect quickly and give up on stalls fast: test runs are short.
FAST = IngestSection(
    backoff_initial_s=0.2, backoff_max_s=1.0, stall_timeout_s=2.0, open_timeout_s=3.0
)


def require_rtsp(reason: str) -> None:
    """Skip, or fail when CI demands the RTSP tests really run."""
    if os.environ.get(REQUIRE_RTSP_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_RTSP_ENV}=1 forbids skipping)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


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
        if pid == os.getpid() or not _pid_alive(pid):
            orphans.add(path.name)
    return orphans


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


class RtspServer:
    """stream/bench/rtsp_camera.py in a child process on 127.0.0.1."""

    def __init__(self, workdir: Path, clip: Path | None, mount: str, silent: bool):
        self.port = free_port()
        self.mount = mount
        self._args = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port)]
        self._args += ["--silent"] if silent else ["--mount", mount, "--file", str(clip)]
        self._log = workdir / f"rtsp-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def url(self, path: str | None = None, userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path or self.mount}"

    def start(self) -> RtspServer:
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(self._args, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"RTSP server exited: {self._log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"RTSP server did not listen on {self.port} within 15 s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _gst_rtsp_available() -> str | None:
    """None if /usr/bin/python3 can run gst-rtsp-server, else why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import GstRtspServer"
    )
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30
    )
    if result.returncode:
        return f"gst-rtsp-server for {SYSTEM_PYTHON} is missing: {result.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def gst_rtsp() -> None:
    problem = _gst_rtsp_available()
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


class EventSink:
    """A PULL socket producers PUSH their events to; remembers everything seen."""

    def __init__(self, context: zmq.Context):
        self.socket = context.socket(zmq.PULL)
        self.socket.linger = 0
        self.socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seen: list[dict[str, Any]] = []

    def _pump(self, timeout: float) -> None:
        if self.socket.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                kind, payload = decode(frames)
                assert kind == "event"
                self.seen.append(payload)

    def of(self, stream: str) -> list[dict[str, Any]]:
        self._pump(0)
        return [e for e in self.seen if e["stream"] == stream]

    def states(self, stream: str) -> list[str]:
        return [e["state"] for e in self.of(stream)]

    def wait_for(self, stream: str, state: str, timeout: float = 15.0, after: int = 0) -> dict:
        """The first `state` event of `stream` at position >= `after` in its history."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.of(stream)[after:]:
                if event["state"] == state:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {state!r} event from {stream!r} within {timeout:g} s; "
                    f"saw {self.of(stream)}"
                )
            self._pump(min(left, 0.1))


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

