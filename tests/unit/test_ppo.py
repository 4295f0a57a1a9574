"""PPO maths of the V1 policy stage, on numbers worked out by hand."""

import math

import pytest
import torch

from adafocus.train.ppo import discounted_returns, normalise, ppo_loss


def test_discounted_returns_sum_future_rewards_with_the_discount():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    # gamma 0.5: G2 = 2, G1 = 0 + 0.5*2 = 1, G0 = 1 + 0.5*1 = 1.5
    expected = torch.tensor([[1.5, 1.0, 2.0], [0.25, 0.5, 1.0]])
    assert torch.allclose(discounted_returns(rewards, 0.5), expected)


def test_discount_zero_keeps_only_the_immediate_reward():
    rewards = torch.tensor([[0.3, -0.2, 0.7]])
    assert torch.allclose(discounted_returns(rewards, 0.0), rewards)


def test_normalised_returns_have_zero_mean_and_unit_std():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    z = normalise(x)
    # std (unbiased) of 1..4 is sqrt(5/3); z = (x - 2.5) / (sqrt(5/3) + 1e-5)
    assert z[0].item() == pytest.approx(-1.5 / (math.sqrt(5 / 3) + 1e-5))
    assert z.mean().item() == pytest.approx(0.0, abs=1e-7)


def test_ratio_is_clipped_on_the_side_that_would_overshoot():
    # step 0: ratio 1.5, advantage +2 -> min(3.0, 1.2*2 = 2.4) = 2.4 (clipped)
    # step 1: ratio 0.5, advantage -2 -> min(-1.0, 0.8*-2 = -1.6) = -1.6 (clipped)
    # step 2: ratio 0.5, advantage +1 -> min(0.5, 0.8) = 0.5 (not clipped: moving back is allowed)
    old = torch.log(torch.tensor([0.2, 0.4, 0.4]))
    new = torch.log(torch.tensor([0.3, 0.2, 0.2])).requires_grad_()
    returns = torch.tensor([2.0, -2.0, 1.0])
    value = torch.zeros(3)
    out = ppo_loss(new, old, value, returns, torch.zeros(3), clip=0.2, value_coef=0.0,
                   entropy_coef=0.0)
    assert out.policy.item() == pytest.approx(-(2.4 - 1.6 + 0.5) / 3)
    assert out.clipped_fraction.item() == pytest.approx(3 / 3)  # |ratio - 1| > 0.2 everywhere
    out.loss.backward()
    # clipped terms carry no gradient; the unclipped one: d(-ratio*A/3)/dlogp = -0.5*1/3
    assert new.grad.tolist() == pytest.approx([0.0, 0.0, -0.5 / 3])


def test_advantage_uses_the_critic_as_baseline_and_value_loss_is_weighted_mse():
    # ratio 1 (same policy): policy term = -mean(returns - value) = -mean([1-0.5, 0-0.5]) = 0
    logp = torch.log(torch.tensor([0.5, 0.25]))
    value = torch.tensor([0.5, 0.5], requires_grad=True)
    returns = torch.tensor([1.0, 0.0])
    entropy = torch.tensor([1.0, 3.0])
    out = ppo_loss(logp, logp, value, returns, entropy, clip=0.2, value_coef=0.5,
                   entropy_coef=0.01)
    assert out.policy.item() == pytest.approx(0.0, abs=1e-7)
    assert out.value.item() == pytest.approx(0.25)  # mean(0.5^2, 0.5^2)
    assert out.entropy.item() == pytest.approx(2.0)
    assert out.loss.item() == pytest.approx(0.5 * 0.25 - 0.01 * 2.0)
    out.loss.backward()
    # only the value term moves the critic: d(0.5 * mean((v - R)^2))/dv = (v - R) / 2
    assert value.grad.tolist() == pytest.approx([-0.25, 0.25])
