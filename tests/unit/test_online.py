"""Online models: frame-by-frame equals the offline clip, streams are isolated."""

import random

import numpy as np
import pytest
import torch

from adafocus import (
    IMAGENET_NORMALIZATION,
    AdaFocus,
    OnlineAdaFocus,
    component_gflops,
    normalize_frames,
    preset,
)
from adafocus.baselines import OnlineBaseline
from adafocus.models import FullFrame, GlanceOnly

NAMES = [str(i) for i in range(10)]


def lively_model(policy: str) -> AdaFocus:
    """A random tiny model whose policy actually moves: BN statistics fitted to the test
    frames (so features vary from frame to frame) and a sharp policy head."""
    torch.manual_seed(3)
    model = AdaFocus(preset("tiny", policy=policy))
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = None  # running stats = average over the fitting pass
    frames = torch.from_numpy(np.stack([clip(100, 6), clip(101, 6)]))
    mean = torch.tensor(IMAGENET_NORMALIZATION["mean"])
    std = torch.tensor(IMAGENET_NORMALIZATION["std"])
    with torch.no_grad():
        model.train().forward_clip(normalize_frames(frames, mean, std))
        head = model.policy.actor if policy == "v1" else model.policy.head
        head.weight.mul_(20)
    return model.eval()


def online(model: AdaFocus) -> OnlineAdaFocus:
    return OnlineAdaFocus(model, NAMES, IMAGENET_NORMALIZATION, component_gflops(model.config),
                          device="cpu", top_k=3)


def clip(seed: int, steps: int) -> np.ndarray:
    """Dim noise with a bright square somewhere new in every frame."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 80, (steps, 128, 128, 3), dtype=np.uint8)
    for frame in frames:
        y, x = rng.integers(0, 100, 2)
        frame[y:y + 28, x:x + 28] = rng.integers(150, 256, 3, dtype=np.uint8)
    return frames


@pytest.mark.parametrize("policy", ["v1", "v2"])
def test_stepping_a_clip_frame_by_frame_gives_the_offline_clip_logits(policy):
    model = lively_model(policy)
    runner = online(model)
    clips = np.stack([clip(1, 8), clip(2, 8)])
    x = runner.to_input(torch.from_numpy(clips).flatten(0, 1)).unflatten(0, (2, 8))
    with torch.no_grad():
        offline = model.forward_clip(x)
    patches = set()
    for t in range(8):
        results = runner.step(clips[:, t], ["a", "b"])
        for b, stream in enumerate(["a", "b"]):
            torch.testing.assert_close(runner.logits(stream), offline.logits[b, t],
                                       atol=1e-4, rtol=1e-4)
            assert results[b].patch == pytest.approx(offline.boxes[b, t].tolist(), abs=1e-5)
            assert results[b].action == "full" and not results[b].skipped
            patches.add(tuple(round(v, 3) for v in results[b].patch))
    assert len(patches) > 2  # the policy moved: the comparison covered several positions


@pytest.mark.parametrize("policy", ["v1", "v2"])
def test_interleaved_streams_in_random_batches_get_exactly_their_solo_results(policy):
    model = lively_model(policy)
    streams = {name: clip(10 + i, 6) for i, name in enumerate(["s0", "s1", "s2"])}
    solo = {}
    for name, frames in streams.items():
        runner = online(model)
        solo[name] = []
        for t in range(6):
            result = runner.step(frames[t:t + 1], [name])[0]
            solo[name].append((result, runner.logits(name)))

    rng = random.Random(0)
    runner = online(model)
    position = dict.fromkeys(streams, 0)
    while any(p < 6 for p in position.values()):
        ready = [n for n, p in position.items() if p < 6]
        batch = rng.sample(ready, rng.randint(1, len(ready)))
        frames = np.stack([streams[n][position[n]] for n in batch])
        for name, result in zip(batch, runner.step(frames, batch), strict=True):
            expected, logits = solo[name][position[name]]
            assert result.class_id == expected.class_id and result.action == expected.action
            assert result.patch == pytest.approx(expected.patch, abs=1e-5)
            torch.testing.assert_close(runner.logits(name), logits, atol=1e-4, rtol=1e-4)
            position[name] += 1


def test_streams_join_reset_and_leave_at_any_time():
    model = lively_model("v1")
    runner = online(model)
    frames = clip(5, 3)
    first = runner.step(frames[0:1], ["cam"])[0]
    runner.step(frames[1:2], ["cam"])
    runner.reset("cam")
    again = runner.step(frames[0:1], ["cam"])[0]
    assert again.topk == first.topk  # a reset stream starts from scratch
    runner.step(frames[1:3], ["cam", "new"])
    assert set(runner.streams) == {"cam", "new"}
    runner.drop("cam")
    runner.drop("cam")  # idempotent
    assert runner.streams == ["new"]
    result = runner.step(frames[2:3], ["new"])[0]
    assert result.gflops == pytest.approx(runner.costs.full_step)
    assert result.gflops_full == pytest.approx(runner.costs.local_full)
    assert result.label == NAMES[result.class_id] and len(result.topk) == 3


def test_bad_frames_ids_and_devices_fail_with_clear_errors():
    runner = online(lively_model("v1"))
    frames = clip(0, 2)
    with pytest.raises(ValueError, match=r"uint8 RGB \(B, 128, 128, 3\)"):
        runner.step(frames[:, :64], ["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        runner.step(frames.astype(np.float32), ["a", "b"])
    with pytest.raises(ValueError, match="2 frames but 1 stream ids"):
        runner.step(frames, ["a"])
    with pytest.raises(ValueError, match="duplicate"):
        runner.step(frames, ["a", "a"])
    assert runner.streams == []  # nothing half-advanced
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda' or 'cuda:N'"):
        OnlineAdaFocus(lively_model("v1"), NAMES, IMAGENET_NORMALIZATION,
                       component_gflops(preset("tiny")), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            OnlineAdaFocus(lively_model("v1"), NAMES, IMAGENET_NORMALIZATION,
                           component_gflops(preset("tiny")), device="cuda:0")


@pytest.mark.parametrize("kind", [GlanceOnly, FullFrame])
def test_a_baseline_stepped_frame_by_frame_gives_its_offline_clip_logits(kind):
    torch.manual_seed(0)
    model = kind(preset("tiny")).eval()
    runner = OnlineBaseline(model, NAMES, IMAGENET_NORMALIZATION, device="cpu", top_k=3)
    clips = np.stack([clip(1, 5), clip(2, 5)])
    x = runner.to_input(torch.from_numpy(clips).flatten(0, 1)).unflatten(0, (2, 5))
    with torch.no_grad():
        offline = model.forward_clip(x)
    for t in range(5):
        results = runner.step(clips[:, t], ["a", "b"])
        for b, stream in enumerate(["a", "b"]):
            torch.testing.assert_close(runner.logits(stream), offline[b, t], atol=1e-4,
                                       rtol=1e-4)
            assert results[b].patch == (0.0, 0.0, 1.0, 1.0)  # the whole frame
            assert results[b].gflops == pytest.approx(runner.costs.full_step)
    runner.reset("a")
    assert runner.streams == ["b"]
