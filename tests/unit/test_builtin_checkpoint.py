"""The shipped builtin:digits loads through the public online API and recognises a
held-out synthetic stream far above chance, with skipping on and off."""

import numpy as np
import pytest

from adafocus import OnlineAdaFocus, load_checkpoint
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.evaluate_metrics import frame_accuracy
from adafocus.interface import resolve_spec
from adafocus.train.comparisons import compare_path, load_comparisons

FRAMES = 250  # 10 s at 25 fps, a few label changes per stream


def _run(online, seeds):
    scenes = [MovingDigitsScene(s, *online.frame_size, split="test") for s in seeds]
    ids = [f"cam{s}" for s in seeds]
    preds, truth, skipped = [], [], 0
    for t in range(FRAMES):
        results = online.step(np.stack([s.frame(t) for s in scenes]), ids)
        preds.append([r.class_id for r in results])
        truth.append([s.label_at(t) for s in scenes])
        skipped += sum(r.skipped for r in results)
    return frame_accuracy(np.array(preds).ravel(), np.array(truth).ravel()), skipped


@pytest.mark.parametrize("skip_mode", ["off", "confidence"])
def test_builtin_digits_classifies_a_test_stream_far_above_chance(skip_mode):
    online = OnlineAdaFocus.from_checkpoint("builtin:digits", device="cpu", skip_mode=skip_mode)
    assert online.class_names == [str(d) for d in range(10)]
    accuracy, skipped = _run(online, seeds=[3, 4])
    assert accuracy > 0.5  # chance is 0.1
    assert (skipped > 0) == (skip_mode == "confidence")


def test_builtin_digits_is_small_calibrated_and_has_its_comparison_models():
    path = resolve_spec("builtin:digits")
    assert path.stat().st_size < 4_000_000
    ck = load_checkpoint("builtin:digits")
    assert {e["budget"] for e in ck.skip_calibration["entries"]} >= {0.2, 0.3, 0.5}
    assert ck.training["shipped"] in ("v1", "v2")
    main, methods = load_comparisons(compare_path("builtin:digits"))
    assert main == ck.training["shipped"]
    assert set(methods) | {main} == {"glance_only", "full_frame", "center", "random", "v1", "v2"}
