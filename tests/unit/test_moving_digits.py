"""The moving-digits scene: deterministic random access, disjoint digit splits,
a digit always inside the frame, labels that change to a different class."""

import numpy as np
import pytest

from adafocus.data import MovingDigitsScene, digit_split, split_indices


def test_same_seed_renders_same_pixels_in_any_access_order():
    a, b = MovingDigitsScene(7), MovingDigitsScene(7)
    forward = [a.frame(i) for i in range(0, 400, 37)]
    backward = [b.frame(i) for i in reversed(range(0, 400, 37))][::-1]
    for x, y in zip(forward, backward, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.frame(5).dtype == np.uint8 and a.frame(5).shape == (128, 128, 3)


def test_far_random_access_matches_sequential_labels():
    far = 250_000  # ~2.8 h at 25 fps: lazily generated timeline chunks
    seq = MovingDigitsScene(3)
    for i in range(0, far, 997):
        seq.label_at(i)
    fresh = MovingDigitsScene(3)
    window = range(far, far + 50)
    assert [fresh.label_at(i) for i in window] == [seq.label_at(i) for i in window]
    np.testing.assert_array_equal(fresh.frame(far), seq.frame(far))


def test_different_seeds_give_different_streams():
    a, b = MovingDigitsScene(1), MovingDigitsScene(2)
    assert not np.array_equal(a.frame(0), b.frame(0))
    sample = range(0, 5000, 50)
    assert [a.label_at(i) for i in sample] != [b.label_at(i) for i in sample]


def test_same_seed_in_another_split_is_another_scene():
    """Training on train scene k never replays the background, paths or label
    timeline of test scene k (e.g. synthetic://digits?seed=k)."""
    train, test = MovingDigitsScene(0, split="train"), MovingDigitsScene(0, split="test")
    labels = [[s.label_at(i) for i in range(0, 5000, 50)] for s in (train, test)]
    assert labels[0] != labels[1]
    assert train.digit_box(100) != test.digit_box(100)
    assert np.abs(train.frame(0).astype(int) - test.frame(0).astype(int)).mean() > 10


def test_splits_are_disjoint_balanced_and_cover_all_digits():
    ids = {s: set(split_indices(s).tolist()) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"]
    assert len(ids["train"] | ids["val"] | ids["test"]) == 1797
    for s in ("train", "val", "test"):
        images, labels = digit_split(s)
        assert images.shape[1:] == (8, 8) and images.min() >= 0 and images.max() <= 1
        assert np.bincount(labels, minlength=10).min() >= 30


def test_scene_draws_handwriting_only_from_its_split():
    for split in ("train", "test"):
        scene = MovingDigitsScene(11, split=split, segment_s=(0.2, 0.4))
        allowed = set(split_indices(split).tolist())
        shown = {scene.digit_id(i) for i in range(0, 3000, 5)}
        assert len(shown) > 50 and shown <= allowed


def test_unknown_split_and_bad_seed_are_rejected():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        MovingDigitsScene(0, split="dev")
    with pytest.raises(ValueError, match="non-negative"):
        MovingDigitsScene(-1)


@pytest.mark.parametrize("height,width", [(128, 128), (96, 176), (200, 120)])
def test_digit_stays_inside_frame_and_moves_smoothly(height, width):
    scene = MovingDigitsScene(5, height, width)
    assert scene.frame(0).shape == (height, width, 3)
    boxes = np.array([scene.digit_box(i) for i in range(3000)])
    assert boxes[:, :2].min() >= 0
    assert boxes[:, 2].max() <= width and boxes[:, 3].max() <= height
    starts = np.array([scene.segment_start(i) for i in range(3000)])
    same_segment = starts[1:] == starts[:-1]
    step = np.abs(np.diff(boxes[:, :2], axis=0)).max(axis=1)[same_segment]
    assert step.max() <= 3, "the digit jumps within a segment"
    assert np.ptp(boxes[:, 0]) > width / 3 and np.ptp(boxes[:, 1]) > height / 3


def test_digit_is_drawn_where_digit_box_says():
    scene = MovingDigitsScene(9)
    for i in range(0, 2000, 97):
        frame = scene.frame(i).astype(np.float32)
        x0, y0, x1, y1 = scene.digit_box(i)
        inside = frame[y0:y1, x0:x1]
        # dark or bright ink over a mid-tone texture: strokes far from the box's median colour
        assert np.abs(inside - np.median(inside, axis=(0, 1))).sum(axis=-1).max() > 100


def test_label_changes_at_random_times_to_a_different_class():
    scene = MovingDigitsScene(4)
    labels = np.array([scene.label_at(i) for i in range(25 * 600)])  # 10 minutes
    changes = np.flatnonzero(np.diff(labels)) + 1
    gaps = np.diff(np.concatenate(([0], changes)))
    assert gaps.min() >= 2 * 25 and gaps.max() <= 6 * 25
    assert len(set(gaps.tolist())) > 20, "segment lengths are not random"
    assert (labels[changes] != labels[changes - 1]).all()
    assert set(labels.tolist()) == set(range(10))
    assert all(scene.segment_start(c) == c and scene.segment_start(c - 1) < c for c in changes[:20])


def test_clip_with_stride_equals_frame_and_label_at():
    scene = MovingDigitsScene(2, 96, 160)
    frames, labels = scene.clip(100, 6, stride=3)
    assert frames.shape == (6, 96, 160, 3) and frames.dtype == np.uint8
    assert labels.dtype == np.int64
    for k, i in enumerate(range(100, 118, 3)):
        np.testing.assert_array_equal(frames[k], scene.frame(i))
        assert labels[k] == scene.label_at(i)
    with pytest.raises(ValueError):
        scene.clip(0, 4, stride=0)
