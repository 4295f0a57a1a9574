"""The worker's tick pacing (stream.infer.pacing): how long it lets frames gather
before a tick, with the tick's own numbers injected instead of a clock."""

from __future__ import annotations

import math

import pytest

from stream.infer.pacing import IDLE_S, RECOVERY, TickPacer, frame_gap

FPS25 = 1 / 25


def test_frames_gather_for_the_rest_of_the_interval_after_a_tick():
    pacer = TickPacer(0.02)
    assert pacer.pause(FPS25, busy_s=0.005, processed=8, dropped=0,
                       backlog=False) == pytest.approx(0.015)
    assert pacer.pause(FPS25, busy_s=0.03, processed=8, dropped=0, backlog=False) == 0.0


def test_the_wait_never_exceeds_half_the_shortest_frame_interval():
    pacer = TickPacer(0.02)
    assert pacer.pause(1 / 60, busy_s=0.0, processed=1, dropped=0,
                       backlog=False) == pytest.approx(1 / 120)


def test_a_backlog_is_taken_at_once():
    assert TickPacer(0.02).pause(FPS25, busy_s=0.0, processed=32, dropped=0, backlog=True) == 0


def test_an_empty_tick_waits_at_least_the_idle_poll_even_with_no_interval():
    assert TickPacer(0.0).pause(math.inf, busy_s=0.0, processed=0, dropped=0,
                                backlog=False) == IDLE_S
    assert TickPacer(0.0).pause(FPS25, busy_s=0.0, processed=4, dropped=0, backlog=False) == 0


def test_frames_dropped_after_a_wait_halve_it_and_it_grows_back_while_none_are():
    pacer = TickPacer(0.02)
    pacer.pause(FPS25, busy_s=0.0, processed=8, dropped=0, backlog=False)  # waits 20 ms
    assert pacer.pause(FPS25, busy_s=0.0, processed=8, dropped=2,
                       backlog=False) == pytest.approx(0.01)
    assert pacer.pause(FPS25, busy_s=0.0, processed=8, dropped=1,
                       backlog=False) == pytest.approx(0.005)
    waits = [pacer.pause(FPS25, busy_s=0.0, processed=8, dropped=0, backlog=False)
             for _ in range(int(1 / RECOVERY))]
    assert waits == sorted(waits) and waits[-1] == pytest.approx(0.02)


def test_drops_without_a_wait_before_them_do_not_shorten_the_wait():
    pacer = TickPacer(0.02)
    pacer.pause(FPS25, busy_s=0.05, processed=8, dropped=0, backlog=False)  # too busy to wait
    assert pacer.pause(FPS25, busy_s=0.0, processed=8, dropped=3,
                       backlog=False) == pytest.approx(0.02)


def test_frame_gap_reads_the_interval_from_timestamps_and_ignores_jumps():
    assert frame_gap(0.12, 0.04, 2) == pytest.approx(0.04)
    assert frame_gap(0.04, None, 1) == math.inf  # first frame
    assert frame_gap(None, 0.04, 1) == math.inf  # no timestamps
    assert frame_gap(0.0, 5.0, 1) == math.inf  # back to the start: a reconnect or a loop
    assert frame_gap(9.0, 5.0, 1) == math.inf  # a jump forward: a seek or a gap
