"""The sources themselves, in-process (the producer tests run them in real
producer processes; URIs are tested in tests/unit/test_source_uris.py)."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stream.ingest.sources import open_source
from stream.ingest.sources.synthetic import PatternScene
from stream.ingest.uri import SourceError, SourceUnavailable, parse_source
from tests.support.producers import CLIP_FRAMES

H, W = 96, 128


def open_frames(uri: str, *, height: int = H, width: int = W, errors: list | None = None,
                **options) -> tuple[list, object]:
    errors = errors if errors is not None else []
    source = open_source(
        parse_source(uri, options), height, width, open_timeout_s=5, stall_timeout_s=5,
        stop=threading.Event(), on_decode_error=lambda: errors.append(1),
    )
    try:
        return [(f.image.copy(), f.pts, f.truth) for f in source.frames()], source
    finally:
        source.close()


def reference_frames(path: Path, height: int = H, width: int = W) -> list[np.ndarray]:
    """The file decoded directly, scaled the same way (swscale area averaging; the
    clip is 4:3 like H x W, so no letterbox)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
                for f in container.decode(video=0)]


# ----------------------------------------------------------------- synthetic


def test_pattern_scene_is_deterministic_carries_its_index_and_visits_every_label():
    scene = PatternScene(seed=5, height=H, width=W, fps=25)
    assert np.array_equal(scene.frame(123), PatternScene(5, H, W, 25).frame(123))
    assert not np.array_equal(scene.frame(123), scene.frame(124))
    assert [PatternScene.decode_index(scene.frame(i)) for i in (0, 1, 77, 4321)] == [0, 1, 77, 4321]
    labels = {scene.label_at(i) for i in range(0, 25 * 60, 5)}
    assert labels == {0, 1, 2, 3}


def test_synthetic_camera_renders_in_real_time_with_ground_truth():
    stop = threading.Event()
    source = open_source(parse_source("synthetic://pattern?fps=50&seed=2"), H, W,
                         open_timeout_s=1, stall_timeout_s=1, stop=stop,
                         on_decode_error=lambda: None)
    scene = PatternScene(2, H, W, 50)
    started = time.monotonic()
    frames = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 11:
            stop.set()
    elapsed = time.monotonic() - started
    assert elapsed >= 10 / 50  # paced like a camera, not as fast as numpy renders
    for f in frames:
        index = PatternScene.decode_index(f.image)
        assert f.image.shape == (H, W, 3) and f.pts == pytest.approx(index / 50)
        assert f.truth == scene.label_at(index)


def test_synthetic_digits_scene_plugs_in_with_its_labels():
    frames, source = [], None
    stop = threading.Event()
    source = open_source(parse_source("synthetic://digits?fps=100&seed=1"), 128, 128,
                         open_timeout_s=1, stall_timeout_s=1, stop=stop,
                         on_decode_error=lambda: None)
    for frame in source.frames():
        frames.append(frame)
        stop.set()
    assert frames[0].image.shape == (128, 128, 3) and 0 <= frames[0].truth <= 9
    assert source.class_names == [str(d) for d in range(10)]


# ----------------------------------------------------------------- PyAV sources


def test_file_source_decodes_every_frame_resized_on_the_decoder_side(h264_clip):
    frames, _ = open_frames(str(h264_clip), realtime=False)
    reference = reference_frames(h264_clip)
    assert len(frames) == CLIP_FRAMES == len(reference)
    assert all(img.shape == (H, W, 3) for img, _, _ in frames)
    assert all(np.array_equal(img, ref) for (img, _, _), ref in zip(frames, reference, strict=True))
    pts = [p for _, p, _ in frames]
    assert pts == sorted(pts) and pts[1] == pytest.approx(0.04)



def _process_threads() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


@pytest.mark.parametrize("decode_threads", [1, 0])
def test_decoder_threads_are_the_configured_count_and_leave_the_frames_alone(
        h264_clip, decode_threads):
    """1 (the default: streams already decode in parallel) starts no libav thread,
    decoder or scaler (adafocus.data.resize.SCALER_THREADS);
    0 leaves the count to libav, one per core on this machine. A first stream is
    decoding already, so what the first decode of a process sets up is not counted."""
    if decode_threads == 0 and (os.cpu_count() or 1) < 2:
        pytest.skip("libav's own count is one thread on a single core")

    def first_frame(threads: int):
        source = open_source(parse_source(str(h264_clip), {"realtime": False}), H, W,
                             open_timeout_s=5, stall_timeout_s=5, stop=threading.Event(),
                             on_decode_error=lambda: None, decode_threads=threads)
        return source, next(source.frames()).image.copy()

    running, _ = first_frame(1)
    before = _process_threads()
    source, first = first_frame(decode_threads)
    started = _process_threads() - before
    source.close()
    running.close()
    assert started == 0 if decode_threads == 1 else started >= 1
    assert np.array_equal(first, reference_frames(h264_clip)[0])

def test_file_source_plays_at_the_native_frame_rate_by_default(h264_clip, tmp_path):
    short = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(h264_clip), "-frames:v", "20",
                    "-c", "copy", str(short)], check=True, timeout=30)
    started = time.monotonic()
    frames, _ = open_frames(str(short))
    assert len(frames) == 20
    assert time.monotonic() - started >= 19 / 25 - 0.02  # 25 fps: pts 0 .. 0.76 s


def test_truncated_file_ends_early_with_a_note_saying_so(h264_clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(h264_clip.read_bytes()[: h264_clip.stat().st_size * 6 // 10])
    errors: list = []
    frames, source = open_frames(str(cut), realtime=False, errors=errors)
    assert 0 < len(frames) < CLIP_FRAMES
    assert "truncated or damaged" in source.end_note


def test_corrupt_packets_are_skipped_and_counted_and_decoding_goes_on(corrupt_h264_clip):
    bad = corrupt_h264_clip
    errors: list = []
    frames, _ = open_frames(str(bad), realtime=False, errors=errors)
    assert errors and len(frames) < CLIP_FRAMES
    assert frames[-1][1] == pytest.approx((CLIP_FRAMES - 1) / 25)  # went on to the end


def test_files_that_are_not_video_give_a_specific_permanent_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 200)
    with pytest.raises(SourceError, match="is not a video file ffmpeg can read"):
        open_frames(str(text))
    audio = tmp_path / "tone.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
                    str(audio)], check=True, timeout=30)
    with pytest.raises(SourceError, match=r"no video stream \(contains audio\)"):
        open_frames(str(audio))
    with pytest.raises(SourceError, match="no such file"):
        open_frames(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="is a directory"):
        open_frames(str(tmp_path))


def test_a_missing_v4l2_device_is_reported_as_unavailable_not_as_a_crash():
    with pytest.raises(SourceUnavailable, match="/dev/video99"):
        open_frames("/dev/video99")


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_hls_over_http_is_decoded_and_a_404_is_a_clear_permanent_error(h264_clip, http_dir):
    root, base = http_dir
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(h264_clip), "-c", "copy",
                    "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
                    str(root / "live.m3u8")], check=True, timeout=30)
    frames, _ = open_frames(f"{base}/live.m3u8", realtime=False)
    reference = reference_frames(h264_clip)
    assert len(frames) == CLIP_FRAMES
    assert np.array_equal(frames[50][0], reference[50])
    with pytest.raises(SourceError, match=r"not found \(404\)"):
        open_frames(f"{base}/missing.m3u8")
