"""Producer processes on local sources (synthetic camera, files) and on bad
input of every kind; RTSP lives in test_producer_rtsp.py."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from stream.backoff import Backoff
from stream.config import IngestSection, StreamSection
from stream.exitcodes import EXIT_PERMANENT
from stream.ingest.group import run_producer
from stream.ingest.sources.synthetic import PatternScene
from stream.metrics import scrape_registry
from tests.support.net import free_port, wait_until
from tests.support.producers import CLIP_FRAMES, read_all

ONE_TRY = IngestSection(
    backoff_initial_s=0.1, backoff_max_s=0.2, stall_timeout_s=2.0, open_timeout_s=2.0
)



def test_backoff_doubles_is_jittered_and_never_exceeds_the_bound():
    rng = random.Random(1)

    def delays(count: int) -> list[float]:
        backoff = Backoff(0.5, 8.0, jitter=0.25, rng=rng)
        return [backoff.next_delay(now=float(t)) for t in range(count)]

    runs = [delays(11) for _ in range(50)]
    firsts = {round(d[0], 6) for d in runs}
    assert len(firsts) > 1 and all(0.375 <= f <= 0.625 for f in firsts)  # jittered around 0.5
    assert all(1.5 <= d[2] <= 2.5 for d in runs)  # 0.5 * 2**2, +-25 %
    assert max(max(d) for d in runs) == 8.0 and delays(200)[-1] == 8.0


def test_synthetic_producer_streams_stamped_frames_with_ground_truth(
    make_ring, start_producer, events
):
    ring = make_ring(slots=64, height=64, width=96)
    start_producer("pattern", "synthetic://pattern?fps=50&seed=7", ring)
    up = events.wait_for("pattern", "up")
    assert events.states("pattern")[:2] == ["connecting", "up"]
    assert up["detail"] == "synthetic pattern 96x64 50 fps"
    wait_until(lambda: ring.written >= 25, 20, "25 frames")
    frames = read_all(ring)
    scene = PatternScene(7, 64, 96, 50)
    seqs = [m.seq for m, _ in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for meta, image in frames:
        index = PatternScene.decode_index(image)
        assert meta.pts == pytest.approx(index / 50)
        assert meta.truth == scene.label_at(index)
        assert abs(meta.t_capture - time.time()) < 30 and meta.epoch == 1


def test_file_producer_plays_the_whole_file_then_reports_ended_and_exits_0(
    make_ring, start_producer, events, h264_clip
):
    ring = make_ring(slots=128, height=120, width=160)
    process = start_producer("file", str(h264_clip), ring, realtime=False)
    ended = events.wait_for("file", "ended", timeout=20)
    process.join(10)
    assert process.exitcode == 0
    assert events.states("file") == ["connecting", "up", "ended"]
    assert f"after {CLIP_FRAMES} frame(s)" in ended["detail"]
    frames = read_all(ring)
    assert len(frames) == CLIP_FRAMES
    pts = [m.pts for m, _ in frames]
    assert pts == sorted(pts) and pts[-1] == pytest.approx((CLIP_FRAMES - 1) / 25)


def test_metrics_count_decoded_frames_and_decode_errors_in_multiprocess_mode(
    make_ring, start_producer, events, corrupt_h264_clip, tmp_path, monkeypatch
):
    bad = corrupt_h264_clip
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # inherited by the child
    ring = make_ring(slots=128, height=60, width=80)
    process = start_producer("bad", str(bad), ring, realtime=False)
    ended = events.wait_for("bad", "ended", timeout=20)
    process.join(10)
    assert process.exitcode == 0
    samples = {
        (s.name, s.labels.get("reason")): s.value
        for metric in scrape_registry().collect()
        for s in metric.samples
        if s.labels.get("stream") == "bad"
    }
    errors = samples[("adafocus_frames_dropped_total", "decode_error")]
    assert errors > 0 and f"{int(errors)} decode error(s)" in ended["detail"]
    assert samples[("adafocus_frames_decoded_total", None)] == ring.written > 0


def test_bad_sources_each_get_a_specific_event_and_do_not_disturb_a_healthy_stream(
    make_ring, start_producer, events, h264_clip, tmp_path
):
    """All at once, next to a healthy synthetic stream that must keep streaming."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    audio = tmp_path / "tone.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
                    str(audio)], check=True, timeout=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(h264_clip.read_bytes()[: h264_clip.stat().st_size // 2])
    refused = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam"
    cases = {  # stream -> (uri, final state, exit code, text the detail must contain)
        "malformed": ("rtsp://cam:99999/x", "down", EXIT_PERMANENT, "malformed source URI"),
        "scheme": ("ftp://cam/x", "down", EXIT_PERMANENT, "unsupported source scheme 'ftp'"),
        "missing": (str(tmp_path / "nope.mp4"), "down", EXIT_PERMANENT, "no such file"),
        "text": (str(text), "down", EXIT_PERMANENT, "is not a video file"),
        "audio": (str(audio), "down", EXIT_PERMANENT, "no video stream (contains audio)"),
        "cut": (str(cut), "ended", 0, "truncated or damaged"),
        "refused": (refused, "down", EXIT_PERMANENT, "connection refused by 127.0.0.1"),
        "host": ("rtsp://no-such-host.invalid/x", "down", EXIT_PERMANENT, "cannot resolve host"),
    }
    healthy_ring = make_ring(slots=8, height=32, width=32)
    start_producer("healthy", "synthetic://pattern?fps=50", healthy_ring)
    events.wait_for("healthy", "up")
    processes = {
        name: start_producer(name, uri, make_ring(slots=4, height=32, width=32), ONE_TRY,
                             max_attempts=1, realtime=False)
        for name, (uri, *_) in cases.items()
    }
    written_before = healthy_ring.written
    for name, (_, state, code, text) in cases.items():
        final = events.wait_for(name, state, timeout=30)
        processes[name].join(10)
        assert processes[name].exitcode == code, name
        assert text in final["detail"], (name, final)
    for name in ("refused", "host"):  # a retryable error first says it will retry
        assert events.states(name) == ["connecting", "reconnecting", "down"]
    everything = [e["detail"] for name in cases for e in events.of(name)]
    assert not any("hunter2" in d for d in everything)
    assert any("admin:***@" in d for d in everything)
    assert healthy_ring.written > written_before  # kept streaming throughout
    assert events.states("healthy") == ["connecting", "up"]


def test_passwords_never_reach_the_log_lines_either(make_ring):
    """The producer logs every state change; run it as a plain child process and
    read its stderr."""
    ring = make_ring(slots=4, height=32, width=32)
    code = textwrap.dedent(f"""
        import logging
        logging.basicConfig(level=logging.INFO)
        from stream.config import IngestSection, StreamSection
        from stream.ingest.group import run_producer
        uri = "rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam?token=t0ken"
        spec = StreamSection(id="cam", uri=uri)
        run_producer(spec, {ring.name!r}, "tcp://127.0.0.1:{free_port()}",
                     IngestSection(backoff_initial_s=0.05), max_attempts=2)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == EXIT_PERMANENT
    assert "connection refused" in result.stderr and "admin:***@" in result.stderr
    assert "hunter2" not in result.stderr and "t0ken" not in result.stderr
    assert "Traceback" not in result.stderr


def _run_and_signal(stream_id: str, uri: str, ring_name: str, events, settings: IngestSection,
                    when: str) -> int | None:
    """Start a producer, SIGTERM it 0.5 s after its `when` event; its exit code, or
    None when it was still running half its open timeout after the signal."""
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=run_producer, args=(
        StreamSection(id=stream_id, uri=uri), ring_name, events.endpoint, settings))
    process.start()
    events.wait_for(stream_id, when, timeout=20)
    time.sleep(0.5)
    os.kill(process.pid, signal.SIGTERM)
    process.join(settings.open_timeout_s / 2)
    code = process.exitcode
    if process.is_alive():
        process.kill()
        process.join()
    return code


def test_sigterm_stops_a_producer_promptly_with_exit_0_even_inside_a_blocking_read(
    make_ring, events
):
    """A silent TCP peer keeps libav blocked in its open for open_timeout (120 s
    here); SIGTERM must still end the process long before that."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    ring = make_ring(slots=4, height=32, width=32)
    slow = IngestSection(open_timeout_s=120, stall_timeout_s=120)
    try:
        code = _run_and_signal("blocked", f"rtsp://127.0.0.1:{port}/x", ring.name, events, slow,
                               when="connecting")
    finally:
        listener.close()
    assert code == 0
    assert events.states("blocked") == ["connecting"]  # it was still connecting
    code = _run_and_signal("streaming", "synthetic://pattern?fps=50", ring.name, events, slow,
                           when="up")
    assert code == 0
