"""`adafocus-stream export`: any synthetic scene becomes a labelled video folder
(H.264 clips + labels.csv, no boxes) that the folder loader reads back with the
scene's own labels at every frame and its pixels up to H.264's loss."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from adafocus.data.export import segments
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.data.video_folder import VideoFolder
from stream.ingest.sources.synthetic import PatternScene


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", "export", *args],
                          capture_output=True, text=True, timeout=120)


def test_digits_scene_exports_as_a_folder_the_loader_reads_back(tmp_path):
    out = tmp_path / "digits"
    proc = export("synthetic://digits?split=test&seed=5", "--out", str(out), "--clips", "2",
                  "--seconds", "6", "--size", "64x48")
    assert proc.returncode == 0, proc.stderr
    header = (out / "labels.csv").read_text().splitlines()[0]
    assert header == "file,start_s,end_s,label"  # segments; nothing about boxes
    folder = VideoFolder(out)
    assert len(folder) == 2 and folder.segmented
    for k, video in enumerate(folder.videos):
        assert (video.height, video.width, video.fps) == (48, 64, 25.0)
        scene = MovingDigitsScene(5 + k, 48, 64, split="test")
        frames, labels = folder.clip(k, 0.0, 150, fps=25.0, height=48, width=64)
        truth = [int(folder.class_names[y]) for y in labels]
        assert truth == [scene.label_at(i) for i in range(150)]
        error = np.abs(frames[::30].astype(int) - np.stack([scene.frame(i) for i in
                                                             range(0, 150, 30)])).mean()
        assert error < 6  # H.264 at crf 18 on a noisy scene
    assert sum(len(v.segments) for v in folder.videos) > 2  # 2-6 s segments: labels change


def test_other_synthetic_scenes_export_too(tmp_path):
    proc = export("synthetic://pattern?seed=2&fps=10", "--out", str(tmp_path / "p"),
                  "--clips", "1", "--seconds", "3", "--size", "64x32")
    assert proc.returncode == 0, proc.stderr
    folder = VideoFolder(tmp_path / "p")
    assert set(folder.class_names) <= set(PatternScene.class_names)
    scene = PatternScene(2, 32, 64, 10.0)
    _, labels = folder.clip(0, 0.0, 30, fps=10.0, height=32, width=64)
    assert [folder.class_names[y] for y in labels] == [
        scene.class_names[scene.label_at(i)] for i in range(30)]


@pytest.mark.parametrize(("args", "message"), [
    (("rtsp://cam/live",), "only synthetic:// scenes can be exported"),
    (("synthetic://digits", "--size", "63x48"), "--size must be WIDTHxHEIGHT with even"),
    (("synthetic://digits?split=nope",), "bad split='nope'"),
])
def test_bad_requests_fail_with_a_message_and_status_2(tmp_path, args, message):
    proc = export(*args, "--out", str(tmp_path / "x"), "--clips", "1", "--seconds", "1")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_an_existing_labels_file_is_never_overwritten(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\nmine.mp4,cat\n")
    proc = export("synthetic://pattern", "--out", str(tmp_path), "--clips", "1",
                  "--seconds", "1", "--size", "64x32")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (tmp_path / "labels.csv").read_text() == "file,label\nmine.mp4,cat\n"


def test_segments_are_runs_of_equal_labels_in_seconds():
    assert segments([3, 3, 1, 1, 1, 3], fps=2.0) == [(0.0, 1.0, 3), (1.0, 2.5, 1), (2.5, 3.0, 3)]
