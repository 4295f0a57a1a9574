"""The full-frame reference time: measured per batch size on the runner's device,
and read for any batch size in between or beyond."""

from __future__ import annotations

import pytest

from adafocus.reference import FullFrameClock, measure_full_frame


def test_clock_interpolates_between_measured_sizes_and_extrapolates_per_frame():
    clock = FullFrameClock({1: 0.010, 4: 0.016, 8: 0.024})
    assert clock(4) == 0.016
    assert clock(2) == pytest.approx(0.012)
    assert clock(6) == pytest.approx(0.020)
    assert clock(16) == pytest.approx(0.048)  # 8 frames' time per 8 frames
    with pytest.raises(ValueError):
        FullFrameClock({})


def test_measurement_doubles_the_batch_until_max_batch_or_the_budget():
    from adafocus import IMAGENET_NORMALIZATION, AdaFocus, OnlineAdaFocus, component_gflops
    from adafocus.config import preset

    config = preset("tiny", frame_size=(64, 64), patch_size=32)
    runner = OnlineAdaFocus(AdaFocus(config), [str(i) for i in range(10)],
                            IMAGENET_NORMALIZATION, component_gflops(config), device="cpu")
    full = measure_full_frame(runner, max_batch=6, budget_s=60.0)
    assert list(full.measured) == [1, 2, 4, 6]
    assert all(seconds > 0 for seconds in full.measured.values())
    ticks = iter(range(1000))  # an injected clock: every reading is one second later
    cut = measure_full_frame(runner, max_batch=64, budget_s=10.0, clock=lambda: next(ticks))
    assert list(cut.measured) == [1, 2]  # 8 readings per size: over 10 s after batch 2
