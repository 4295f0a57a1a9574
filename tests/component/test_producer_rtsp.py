"""Producers against a real RTSP camera: Debian's gst-rtsp-server on 127.0.0.1
(stream/bench/rtsp_camera.py), started, killed, restarted and frozen by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import av
import numpy as np
import pytest

from stream.config import IngestSection
from stream.exitcodes import EXIT_PERMANENT
from tests.support.net import wait_until
from tests.support.producers import CLIP_FRAMES, FAST, read_all

pytestmark = pytest.mark.rtsp
H, W = 120, 160  # the ring's size: every frame is scaled on the decoder side



def test_frames_read_over_rtsp_match_the_file_frame_for_frame(
    rtsp_server, h264_clip, make_ring, start_producer, events
):
    server = rtsp_server()
    ring = make_ring(slots=256, height=H, width=W)  # holds the whole clip: nothing lapped
    start_producer("cam", server.url(), ring)
    events.wait_for("cam", "up")
    # The server plays the file once; the end of a live stream means "reconnect".
    end = events.wait_for("cam", "reconnecting", timeout=20)
    assert "connection lost" in end["detail"]
    frames = [(m, img) for m, img in read_all(ring) if m.epoch == 1]
    with av.open(str(h264_clip)) as container:
        reference = [f.to_ndarray(width=W, height=H, format="rgb24", interpolation="AREA")
                     for f in container.decode(video=0)]
    assert len(frames) == len(reference) == CLIP_FRAMES
    for (_, image), expected in zip(frames, reference, strict=True):
        diff = np.abs(image.astype(np.int16) - expected).mean()
        assert diff < 1.0  # same bitstream, same scaler: equal up to codec tolerance
    seqs = [m.seq for m, _ in frames]
    assert seqs == list(range(seqs[0], seqs[0] + CLIP_FRAMES))
    pts = [m.pts for m, _ in frames if m.pts is not None]  # RTSP's first frame may lack one
    assert len(pts) >= CLIP_FRAMES - 1 and all(b > a for a, b in zip(pts, pts[1:], strict=False))
    assert pts[-1] - pts[0] == pytest.approx((len(pts) - 1) / 25, abs=0.01)


def udp_sockets(pid: int) -> set[int]:
    """Inodes of the UDP sockets process `pid` holds open (RTP/RTCP over UDP)."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[len("socket:["):-1]))
    udp = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                udp.add(int(line.split()[9]))
    return held & udp


def test_udp_transport_is_selectable(rtsp_server, make_ring, start_producer, events):
    """RTP really travels over UDP when asked (the producer holds UDP sockets while it
    streams), and over the RTSP TCP connection otherwise (it holds none)."""
    server = rtsp_server()
    rings = {name: make_ring(slots=64, height=H, width=W) for name in ("udp", "tcp")}
    processes = {
        "udp": start_producer("udp", server.url() + "?transport=udp", rings["udp"]),
        "tcp": start_producer("tcp", server.url(), rings["tcp"]),
    }
    for name, ring in rings.items():
        events.wait_for(name, "up")
        wait_until(lambda ring=ring: ring.written >= 20, 15, f"20 frames over {name}")
    assert udp_sockets(processes["udp"].pid), "no UDP socket: the transport was ignored"
    assert not udp_sockets(processes["tcp"].pid)


def test_producer_reconnects_when_the_server_is_killed_and_restarted_on_the_same_port(
    rtsp_server, make_ring, start_producer, events
):
    server = rtsp_server()
    ring = make_ring(slots=32, height=H, width=W)
    process = start_producer("cam", server.url(), ring)
    events.wait_for("cam", "up")
    wait_until(lambda: ring.written >= 10, 10, "10 frames before the kill")
    server.kill()
    reconnecting = events.wait_for("cam", "reconnecting", timeout=FAST.stall_timeout_s + 5)
    assert "connection lost" in reconnecting["detail"] and "retry" in reconnecting["detail"]
    before = ring.written
    server.start()
    n_events = len(events.of("cam"))
    events.wait_for("cam", "up", timeout=20, after=events.states("cam").index("reconnecting"))
    wait_until(lambda: ring.written >= before + 10, 10, "frames after the restart")
    assert process.is_alive()  # the same process recovered; nobody restarted it
    assert ring.epoch == 2 and n_events >= 3
    out = np.empty(ring.shape, np.uint8)
    assert ring.read_latest(out).epoch == 2


def test_a_server_that_accepts_but_never_answers_is_an_open_that_timed_out(
    rtsp_server, make_ring, start_producer, events
):
    """It never came up, so it did not stall: the event says the open timed out,
    and the producer keeps retrying."""
    server = rtsp_server(silent=True)
    ring = make_ring(slots=4, height=H, width=W)
    timeout = 1.5
    settings = IngestSection(backoff_initial_s=0.2, open_timeout_s=timeout,
                             stall_timeout_s=timeout)
    start_producer("hung", server.url(), ring, settings)
    events.wait_for("hung", "connecting")
    retry = events.wait_for("hung", "reconnecting", timeout=timeout + 20)
    assert f"open timed out (no answer within {timeout:g} s)" in retry["detail"]
    events.wait_for("hung", "reconnecting", after=events.states("hung").index("reconnecting"))
    assert "stalled" not in events.states("hung") and "up" not in events.states("hung")


def test_a_server_that_stops_sending_mid_stream_is_declared_stalled_and_recovers(
    rtsp_server, make_ring, start_producer, events
):
    """SIGSTOP freezes the camera with its TCP connection open: the watchdog
    must notice the silence, and the producer reconnect once it thaws."""
    server = rtsp_server()
    ring = make_ring(slots=32, height=H, width=W)
    settings = IngestSection(backoff_initial_s=0.2, backoff_max_s=0.5, open_timeout_s=1.5,
                             stall_timeout_s=1.5)
    start_producer("frozen", server.url(), ring, settings)
    events.wait_for("frozen", "up")
    wait_until(lambda: ring.written >= 5, 10, "frames before the freeze")
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        stalled = events.wait_for("frozen", "stalled", timeout=10)
        assert "no data for 1.5 s" in stalled["detail"]
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    events.wait_for("frozen", "up", timeout=20, after=events.states("frozen").index("stalled"))


def test_a_wrong_path_is_a_clear_permanent_404(rtsp_server, make_ring, start_producer, events):
    server = rtsp_server()
    ring = make_ring(slots=4, height=H, width=W)
    process = start_producer("typo", server.url("/clpi", userinfo="viewer:pa55word@"), ring)
    down = events.wait_for("typo", "down", timeout=15)
    process.join(10)
    assert process.exitcode == EXIT_PERMANENT
    assert "not found (404)" in down["detail"] and "viewer:***@" in down["detail"]
    assert "pa55word" not in str(events.of("typo"))
