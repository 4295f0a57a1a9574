"""Offline clip forward: what training needs (per-step logits, PPO fields, aux heads)."""

import pytest
import torch

from adafocus import AdaFocus, preset


@pytest.fixture
def frames():
    torch.manual_seed(0)
    return torch.randn(2, 4, 3, 128, 128)


def test_v1_clip_returns_per_step_logits_and_ppo_fields_that_evaluate_actions_reproduces(frames):
    model = AdaFocus(preset("tiny"))
    with torch.no_grad():
        model.policy.actor.weight.mul_(50)  # make the sampled cells differ
    out = model.forward_clip(frames, sample=True, random_baseline=True,
                             generator=torch.Generator().manual_seed(1))
    assert out.logits.shape == out.glance_logits.shape == out.local_logits.shape == (2, 4, 10)
    assert out.cells.shape == out.log_probs.shape == out.values.shape == (2, 4)
    assert out.policy_logits.shape == (2, 4, 49) and out.random_logits.shape == (2, 4, 10)
    assert out.boxes.shape == (2, 4, 4) and out.locations.shape == (2, 4, 2)
    log_probs, values, entropy = model.evaluate_actions(out.glance_maps, out.cells)
    torch.testing.assert_close(log_probs, out.log_probs)
    torch.testing.assert_close(values, out.values)
    torch.testing.assert_close(entropy, out.entropy)
    rewards = model.ppo_rewards(out, torch.tensor([3, 7]))
    assert rewards.shape == (2, 4) and rewards.abs().max() <= 1
    # training signal reaches the classifier and the local network
    out.logits.sum().backward()
    assert model.classifier.head.weight.grad is not None
    assert model.local.features[0][0].weight.grad.abs().sum() > 0


def test_v2_policy_is_trained_through_the_crop_but_not_into_the_glance_map(frames):
    model = AdaFocus(preset("tiny", policy="v2"))
    out = model.forward_clip(frames)
    assert out.cells is None and out.log_probs is None
    assert ((out.locations >= 0) & (out.locations <= 1)).all()
    out.logits.sum().backward()
    assert model.policy.head.weight.grad.abs().sum() > 0
    # the glance network learns from the classifier, not through the policy's input
    assert model.glance.features[0].weight.grad is not None


def test_random_and_center_patch_sources(frames):
    model = AdaFocus(preset("tiny")).eval()
    center = model.forward_clip(frames, patch_source="center")
    assert torch.all(center.cells == 24)
    rand = model.forward_clip(frames, patch_source="random",
                              generator=torch.Generator().manual_seed(0))
    assert rand.cells.unique().numel() > 1
    with pytest.raises(ValueError, match="patch source"):
        model.forward_clip(frames, patch_source="middle")
    with pytest.raises(ValueError, match="frames must be"):
        model.forward_clip(frames[..., :64])


def test_paper_preset_shapes_on_one_frame():
    model = AdaFocus(preset("paper", num_classes=5, patch_size=96)).eval()
    assert model.glance.map_size == (7, 7) and model.glance.out_channels == 1280
    assert model.local.out_features == 2048
    with torch.no_grad():
        out = model.forward_clip(torch.randn(1, 1, 3, 224, 224))
    assert out.logits.shape == (1, 1, 5) and out.glance_maps.shape == (1, 1, 1280, 7, 7)
