"""The labelled video-folder loader on real video files written with PyAV:
causal sampling, per-frame labels, and a clear error for each bad dataset."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from adafocus.data.streams import FolderSource, SequenceDataset
from adafocus.data.video_folder import DatasetError, VideoFolder


def write_video(path: Path, codec: str, width: int, height: int, fps: int, seconds: float) -> None:
    """Frame i is a flat grey of level 12 * i (so a decoded frame tells its index)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(int(seconds * fps)):
            image = np.full((height, width, 3), 12 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_index(image: np.ndarray) -> int:
    """Read from the centre: a clip of another aspect ratio is letterboxed."""
    h, w = image.shape[:2]
    return int(round(float(image[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2].mean()) / 12))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A wide 10 fps MPEG-4 clip (2 s) and a tall 5 fps MJPEG clip (3 s)."""
    root = tmp_path_factory.mktemp("clips")
    write_video(root / "wide.mp4", "mpeg4", 96, 48, 10, 2.0)
    write_video(root / "tall.avi", "mjpeg", 32, 64, 5, 3.0)
    return root


def with_labels(root: Path, text: str) -> Path:
    (root / "labels.csv").write_text(text)
    return root


def test_clip_labels_sorted_classes_and_probed_video_facts(clips):
    folder = VideoFolder(with_labels(clips, "file,label\nwide.mp4,walk\ntall.avi,run\n"))
    assert folder.class_names == ["run", "walk"] and len(folder) == 2
    wide, tall = folder.videos
    assert (wide.width, wide.height, wide.fps) == (96, 48, 10.0)
    assert (tall.width, tall.height, tall.fps) == (32, 64, 5.0)
    assert wide.duration_s == pytest.approx(2.0, abs=0.11)
    assert tall.duration_s == pytest.approx(3.0, abs=0.21)
    frames, labels = folder.clip(0, 0.0, 5, fps=25.0, height=40, width=40)
    assert frames.shape == (5, 40, 40, 3) and frames.dtype == np.uint8
    assert labels.tolist() == [1] * 5


@pytest.mark.parametrize("video,fps,count", [(0, 10, 20), (1, 5, 15)])
def test_sampling_is_causal_newest_frame_not_after_each_time(clips, video, fps, count):
    folder = VideoFolder(with_labels(clips, "file,label\nwide.mp4,walk\ntall.avi,run\n"))
    frames, _ = folder.clip(video, 0.52, 20, fps=25.0, height=24, width=24, stride=2)
    times = 0.52 + np.arange(20) * 2 / 25
    expected = [min(int(np.floor(t * fps + 1e-6)), count - 1) for t in times]
    assert [frame_index(f) for f in frames] == expected


def test_frames_after_the_end_hold_the_last_frame_and_are_ignored(clips):
    folder = VideoFolder(with_labels(clips, "file,label\nwide.mp4,walk\n"))
    frames, labels = folder.clip(0, 1.8, 6, fps=10.0, height=16, width=16)
    assert [frame_index(f) for f in frames] == [18, 19, 19, 19, 19, 19]
    assert labels.tolist() == [0, 0, -1, -1, -1, -1]


def test_segment_labels_per_frame_with_gaps_ignored(clips):
    folder = VideoFolder(with_labels(clips, "file,start_s,end_s,label\n"
                                     "wide.mp4,0.0,0.5,sit\nwide.mp4,1.0,1.5,stand\n"
                                     "tall.avi,0,3,sit\n"))
    assert folder.class_names == ["sit", "stand"]
    _, labels = folder.clip(0, 0.0, 25, fps=10.0, height=8, width=8)
    assert labels.tolist() == [0] * 5 + [-1] * 5 + [1] * 5 + [-1] * 10


def test_missing_file_names_line_and_file(clips):
    with pytest.raises(DatasetError, match=r"labels.csv:3: video file 'gone.mp4' not found"):
        VideoFolder(with_labels(clips, "file,label\nwide.mp4,walk\ngone.mp4,run\n"))


def test_unknown_label_against_given_class_names(clips):
    with pytest.raises(DatasetError, match=r":2: unknown label 'jump'; known labels: run, walk"):
        VideoFolder(with_labels(clips, "file,label\nwide.mp4,jump\n"), class_names=["run", "walk"])


def test_overlapping_segments_name_both_lines(clips):
    text = "file,start_s,end_s,label\nwide.mp4,0,1.5,a\ntall.avi,0,1,a\nwide.mp4,1.0,2.0,b\n"
    with pytest.raises(DatasetError, match=r"'wide.mp4' on lines 2 \[0.0, 1.5\) and 4 .* overlap"):
        VideoFolder(with_labels(clips, text))


def write_audio(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)


def test_audio_only_file_has_no_video_stream(tmp_path):
    write_audio(tmp_path / "voice.wav")
    with pytest.raises(DatasetError, match="'voice.wav' is not a readable video: it has no video"):
        VideoFolder(with_labels(tmp_path, "file,label\nvoice.wav,speech\n"))


def test_corrupt_and_non_video_files_are_unreadable(tmp_path, clips):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    data = (clips / "wide.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:200])  # header only, no frames
    for name in ("notes.mp4", "cut.mp4"):
        with pytest.raises(DatasetError, match=rf":2: '{name}' is not a readable video"):
            VideoFolder(with_labels(tmp_path, f"file,label\n{name},x\n"))


@pytest.mark.parametrize("text,problem", [
    ("path,class\nwide.mp4,a\n", "header must be 'file,label' or 'file,start_s,end_s,label'"),
    ("file,label\nwide.mp4\n", ":2: expected 2 fields"),
    ("file,label\nwide.mp4,a\nwide.mp4,b\n", ":3: 'wide.mp4' is listed twice"),
    ("file,start_s,end_s,label\nwide.mp4,2,1,a\n", ":2: end_s 1.0 must be after start_s 2.0"),
    ("file,start_s,end_s,label\nwide.mp4,x,1,a\n", ":2: start_s 'x' is not a number"),
    ("file,start_s,end_s,label\nwide.mp4,9,10,a\n", ":2: segment starts at 9.0 s, after the end"),
    ("file,label\n", "no labelled rows"),
])
def test_malformed_labels_csv_says_what_is_wrong(clips, text, problem):
    with pytest.raises(DatasetError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        VideoFolder(with_labels(clips, text))


def test_missing_labels_csv(tmp_path):
    with pytest.raises(DatasetError, match="labels file .*labels.csv not found"):
        VideoFolder(tmp_path)


def test_training_sequences_from_clip_labels_splice_two_clips_for_a_change(clips):
    folder = VideoFolder(with_labels(clips, "file,label\nwide.mp4,walk\ntall.avi,run\n"))
    data = SequenceDataset(FolderSource(folder, 32, 48, fps=25.0), length=10, max_gap=2,
                           change_fraction=1.0, seed=3, items=4)
    for frames, labels in data:
        assert frames.shape == (10, 32, 48, 3) and frames.dtype == torch.uint8
        labelled = labels[labels >= 0]
        cut = int(np.flatnonzero(np.diff(labelled.numpy()))[0]) + 1
        assert set(labelled[:cut].tolist()) | set(labelled[cut:].tolist()) == {0, 1}
        assert len(set(labelled[:cut].tolist())) == 1 and len(set(labelled[cut:].tolist())) == 1


def test_training_sequences_from_segments_cross_a_segment_start(clips):
    folder = VideoFolder(with_labels(clips, "file,start_s,end_s,label\n"
                                     "wide.mp4,0.0,0.5,sit\nwide.mp4,1.0,1.5,stand\n"
                                     "tall.avi,0,3,sit\n"))
    data = SequenceDataset(FolderSource(folder, 16, 16, fps=10.0), length=6,
                           change_fraction=1.0, seed=4, items=5)
    for _, labels in data:
        assert 1 in labels.tolist(), "a change always enters the only later segment ('stand')"
        assert (labels[1:] != labels[:-1]).any()
    calm = SequenceDataset(FolderSource(folder, 16, 16, fps=10.0), length=3,
                           change_fraction=0.0, seed=4, items=8)
    assert all((labels >= 0).any() for _, labels in calm)
