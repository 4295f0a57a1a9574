"""The box warm starts (a departure from the papers): the target a policy is fitted to
puts the whole box inside the patch, and fitting a V1 grid policy and a V2 continuous
policy to the scene's digit boxes moves their patches towards the digit on held-out
test scenes. (Label-only boxes: tests/component/test_label_only_training.py.)"""

import dataclasses

import numpy as np
import pytest
import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION
from adafocus.config import preset
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.data.streams import DigitsSource
from adafocus.models import AdaFocus
from adafocus.train.boxes import box_warmup, pretrain_glance, target_cells, target_location
from adafocus.train.config import AugmentSection, DataSection, StageSection
from adafocus.train.data import Sampling, batch_sampler, frame_sampler, truth_boxes
from adafocus.train.loop import StageContext
from adafocus.train.state import RunState

CPU = torch.device("cpu")
SMALL = preset("tiny", frame_size=(64, 64), glance_size=(16, 16), patch_size=32,
               policy_grid=(3, 3), glance_channels=(8, 16), glance_strides=(2, 2),
               local_channels=(8, 16), local_strides=(2, 2), policy_channels=4,
               policy_hidden=32, classifier_hidden=16)


@pytest.mark.parametrize("policy", ["v1", "v2"])
def test_box_target_patch_contains_the_whole_digit(policy):
    model = AdaFocus(preset("tiny", policy=policy))
    scene = MovingDigitsScene(5, split="train")
    boxes = torch.tensor([scene.digit_box(i) for i in range(0, 5000, 37)], dtype=torch.float32)
    location = target_location(model, boxes)
    focus = (model.focus_from_cells(target_cells(model, location)) if policy == "v1"
             else model.locate(len(boxes), "center"))
    if policy == "v2":
        focus.location = location
    patch = model.boxes(focus) * 128  # normalised (x0, y0, x1, y1) -> pixels
    assert (patch[:, :2] <= boxes[:, :2] + 0.5).all() and (patch[:, 2:] >= boxes[:, 2:] - 0.5).all()


def _sampling(source) -> Sampling:
    return Sampling(0, CPU, IMAGENET_NORMALIZATION, AugmentSection(), truth_boxes(source))


def _sequences(source, batch_size: int, seq_len: int, max_gap: int):
    data = DataSection(seq_len=seq_len, max_gap=max_gap, batch_size=batch_size)
    return batch_sampler(source, data, _sampling(source), with_boxes=True)


def _miss(model, frames, boxes) -> float:
    """Mean distance (location units, L-inf) of the policy's patch from the target."""
    with torch.no_grad():
        model.eval()
        out = model.forward_clip(frames)
    return float((out.locations - target_location(model, boxes)).abs().amax(-1).mean())


@pytest.mark.parametrize("policy", ["v1", "v2"])
def test_box_warmup_teaches_the_policy_where_the_digit_is(tmp_path, policy):
    torch.manual_seed(0)
    model = AdaFocus(dataclasses.replace(SMALL, policy=policy))
    train = DigitsSource("train", 64, 64, scenes=16, cache=16)
    test = DigitsSource("test", 64, 64, scenes=8)
    held_out = _sequences(test, 32, 4, 3)(0)
    before = _miss(model, held_out.frames, held_out.boxes)
    locator = torch.nn.Conv2d(model.glance.out_channels, 1, 1)
    run = RunState(tmp_path / "state.pt", {"test": 1}, {"m": model, "locator": locator})
    frames = frame_sampler(train, 32, _sampling(train), with_boxes=True)
    ctx = StageContext(run, seed=0, sample=frames, save_every=1000, progress=False)
    pretrain_glance(ctx, model, locator, StageSection(steps=120, lr=3e-3))
    ctx.sample = _sequences(train, 8, 4, 3)
    summary = box_warmup(ctx, "boxes", model, StageSection(steps=120, lr=3e-3), 0.5)
    after = _miss(model, held_out.frames, held_out.boxes)
    assert np.isfinite(summary["loss"])
    # before: ~a constant guess; seeded, measured 0.60 -> 0.34 (v1), 0.35 -> 0.26 (v2)
    assert after < 0.85 * before, (before, after)
