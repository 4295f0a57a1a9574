"""Stream metrics on hand-made label sequences whose answers are worked out by hand."""

import math

import numpy as np
import pytest

from adafocus.evaluate_metrics import (
    change_delays,
    change_points,
    evaluate_stream,
    frame_accuracy,
    gflops_per_frame,
    summarize_delays,
)

#                 0  1  2  3  4  5  6  7  8  9 10 11 12 13
TRUTH = np.array([3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 2, 2, 2])
PRED = np.array([3, 3, 3, 3, 3, 5, 3, 5, 5, 5, 5, 2, 2, 2])


def test_frame_accuracy_counts_labelled_frames_only():
    assert frame_accuracy(PRED, TRUTH) == pytest.approx(12 / 14)
    truth = np.array([-1, -1, 1, 1])
    assert frame_accuracy(np.array([0, 0, 1, 0]), truth) == 0.5
    assert math.isnan(frame_accuracy(np.array([0, 0]), np.array([-1, -1])))


def test_change_points_skip_the_start_and_ignored_gaps():
    assert change_points(TRUTH).tolist() == [4, 11]
    # 1 -> gap -> 1 is no change; 1 -> gap -> 4 changes where 4 begins
    assert change_points(np.array([-1, 1, 1, -1, 1, -1, -1, 4, 4])).tolist() == [7]


def test_delay_waits_for_hold_consecutive_correct_frames():
    # change at 4: frame 5 is right but 6 flickers back; 7,8,9 hold -> delay 3 frames
    assert change_delays(PRED, TRUTH, hold=3).tolist() == [3.0, 0.0]
    # with hold=1 the flicker at 5 counts as noticed
    assert change_delays(PRED, TRUTH, hold=1).tolist() == [1.0, 0.0]


def test_hold_is_cut_to_a_short_segment_and_a_never_noticed_change_is_missed():
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0])
    delays = change_delays(pred, truth, hold=5)
    assert delays[0] == 1.0  # segment of 2 frames: one correct frame left is enough
    assert math.isnan(delays[1])


def test_summary_in_frames_and_seconds_with_missed_fraction():
    stats = summarize_delays(np.array([2.0, 4.0, 12.0, np.nan]), fps=4.0)
    assert stats["changes"] == 4 and stats["missed_fraction"] == 0.25
    assert stats["mean_delay_frames"] == 6.0 and stats["mean_delay_s"] == 1.5
    assert stats["median_delay_frames"] == 4.0 and stats["median_delay_s"] == 1.0
    assert stats["p90_delay_frames"] == pytest.approx(10.4)


def test_gflops_per_frame_counts_skipped_frames_as_free():
    assert gflops_per_frame(np.array([1.0, 0.0, 0.0, 1.0])) == 0.5
    with pytest.raises(ValueError):
        gflops_per_frame(np.array([]))


def test_evaluate_stream_reports_everything_for_one_stream():
    gflops = np.where(np.arange(14) % 2 == 0, 0.4, 0.0)
    result = evaluate_stream(PRED, TRUTH, fps=25.0, gflops=gflops, gflops_full=np.full(14, 2.0),
                             hold=3)
    assert result["accuracy"] == pytest.approx(12 / 14)
    assert result["changes"] == 2 and result["mean_delay_frames"] == 1.5
    assert result["mean_delay_s"] == pytest.approx(0.06)
    assert result["gflops_per_frame"] == pytest.approx(0.2)
    assert result["savings"] == pytest.approx(0.9)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        frame_accuracy(np.zeros(3), np.zeros(4))
