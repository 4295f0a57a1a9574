"""Adaptive frame skipping: still scenes cost ~nothing, changes get a full look in time,
calibration meets compute budgets."""

import numpy as np
import pytest
import torch

from adafocus import (
    IMAGENET_NORMALIZATION,
    AdaFocus,
    OnlineAdaFocus,
    SkipThresholds,
    StreamSignals,
    calibrate,
    component_gflops,
    preset,
)
from adafocus.skip import frame_thumbnails, thresholds_for_budget

NAMES = [str(i) for i in range(10)]
MAX_SPAN = 8


def runner(skip: SkipThresholds | None) -> OnlineAdaFocus:
    torch.manual_seed(0)
    model = AdaFocus(preset("tiny")).eval()
    return OnlineAdaFocus(model, NAMES, IMAGENET_NORMALIZATION, component_gflops(model.config),
                          device="cpu", skip=skip)


def scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 60, (128, 128, 3), dtype=np.uint8)
    y, x = rng.integers(0, 100, 2)
    frame[y:y + 28, x:x + 28] = rng.integers(120, 256, 3, dtype=np.uint8)
    return frame


def noisy(frame: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` copies of a frame with +-2 levels of sensor noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-2, 3, (count, *frame.shape))
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_identical_frames_cost_at_most_a_glance_except_the_guaranteed_refreshes():
    online = runner(SkipThresholds(pixel_change=3.0, glance_change=0.05, confidence=0.0,
                                   max_span=MAX_SPAN))
    frame = scene(1)
    results = [online.step(frame[None], ["cam"])[0] for _ in range(40)]
    actions = [r.action for r in results]
    full = [t for t, a in enumerate(actions) if a == "full"]
    assert full == list(range(0, 40, MAX_SPAN))  # first frame + one refresh per span
    glance_cost = online.costs.skip_signal + online.costs.glance
    cheap = [r for r in results if r.gflops <= glance_cost]
    assert len(cheap) == 40 - len(full)
    assert all(r.label == results[0].label and r.skipped for r in results[1:MAX_SPAN])
    assert all(r.patch is None for r in results if r.skipped)


def test_a_sudden_scene_change_is_processed_in_full_within_the_refresh_span():
    online = runner(SkipThresholds(pixel_change=3.0, glance_change=0.05, confidence=0.0,
                                   max_span=MAX_SPAN))
    frames = np.concatenate([noisy(scene(1), 13, 0), noisy(scene(2), 20, 1)])
    actions = [online.step(f[None], ["cam"])[0].action for f in frames]
    after = actions[13:]
    assert "full" in after[:MAX_SPAN]
    assert after[0] != "skip"  # the pixel change alone already wakes the glance network
    assert actions[1:8].count("skip") == 7  # the noise alone does not


def test_calibration_meets_each_budget_and_the_online_run_follows_it():
    online = runner(None)
    cuts = [scene(s) for s in range(6)]
    validation = [online.record_signals(np.concatenate(
        [noisy(cuts[(k + i) % 6], 10, 10 * k + i) for i in range(4)])) for k in range(2)]
    calibration = calibrate(validation, [0.25, 0.5, 0.9], online.costs, max_span=MAX_SPAN)
    costs = [e["cost"] for e in calibration["entries"]]
    assert all(e["met"] and e["cost"] <= e["budget"] for e in calibration["entries"])
    assert costs == sorted(costs)

    thresholds = thresholds_for_budget(calibration, 0.5)
    online.skip = thresholds
    stream = np.concatenate([noisy(cuts[i], 10, 100 + i) for i in (0, 1, 2, 3)])
    results = [online.step(f[None], ["cam"])[0] for f in stream]
    spent = sum(r.gflops for r in results) / (len(results) * online.costs.full_step)
    print(f"calibrated budget 0.5: replayed {costs[1]:.3f}, online {spent:.3f}")
    assert spent <= 0.5 + 0.05


def test_calibration_on_synthetic_signals_trades_compute_for_agreement():
    rng = np.random.default_rng(0)
    streams = []
    for _ in range(3):
        labels = np.repeat(rng.integers(0, 10, 6), 20)  # a new scene every 20 frames
        centres = rng.normal(0, 40, (10, 768)) + 128
        glances = rng.normal(0, 1, (10, 32)) + 3
        streams.append(StreamSignals(
            thumbs=centres[labels] + rng.normal(0, 0.5, (120, 768)),
            glance=glances[labels] + rng.normal(0, 0.01, (120, 32)),
            confidence=np.full(120, 0.9), predictions=labels))
    costs = component_gflops(preset("tiny"))
    calibration = calibrate(streams, [0.05, 0.2, 0.5], costs, max_span=10)
    low, mid, high = calibration["entries"]
    assert not low["met"]  # refreshing every 10 frames alone costs more than 5%
    assert mid["met"] and mid["cost"] <= 0.2 and mid["agreement"] == pytest.approx(1.0)
    assert high["cost"] <= 0.5
    th = thresholds_for_budget(calibration, 0.3)
    assert th == SkipThresholds(mid["pixel_change"], mid["glance_change"], mid["confidence"], 10)
    with pytest.raises(ValueError, match="calibrated budgets"):
        thresholds_for_budget(calibration, 0.01)


@pytest.mark.parametrize("size", [(128, 128), (224, 224), (96, 160), (100, 120)])
def test_thumbnails_are_the_exact_block_means_of_the_frame(size):
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, *size, 3),
                                                               dtype=np.uint8))
    pooled = torch.nn.functional.adaptive_avg_pool2d(frames.permute(0, 3, 1, 2).double(), 16)
    torch.testing.assert_close(frame_thumbnails(frames).double(), pooled.flatten(1),
                               atol=1e-4, rtol=0)
