"""PPO maths for the AdaFocus V1 patch policy (stage 2).

Kept free of any model so it can be checked on hand-computed numbers. Follows
the reference recipe: per-sequence discounted returns (discount 0.7: a patch
mostly pays off on the next few frames), returns normalised per batch, the
critic's value as baseline, clipped surrogate (0.2), value loss 0.5 x MSE and
an entropy bonus 0.01 that keeps the grid policy from collapsing early.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PPOLoss:
    """The total loss to minimise and its parts (detached), for logging."""

    loss: Tensor
    policy: Tensor
    value: Tensor
    entropy: Tensor
    clipped_fraction: Tensor


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + gamma * G_{t+1} along the last axis, G_T = 0 after the rollout.

    rewards: (..., T). A stream never ends, so the rollout is truncated: the
    return only counts rewards inside it (what the reference does with its
    16-step rollouts).
    """
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out


def normalise(x: Tensor, eps: float = 1e-5) -> Tensor:
    """(x - mean) / (std + eps) over all elements: a per-batch scale-free return."""
    return (x - x.mean()) / (x.std() + eps)


def ppo_loss(log_prob: Tensor, old_log_prob: Tensor, value: Tensor, returns: Tensor,
             entropy: Tensor, *, clip: float = 0.2, value_coef: float = 0.5,
             entropy_coef: float = 0.01) -> PPOLoss:
    """Clipped-surrogate PPO loss, averaged over every (sequence, step).

    advantage = returns - value (value detached, so the actor does not move the
    critic); ratio = exp(log_prob - old_log_prob); the policy term is
    -min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A). All inputs have the
    same shape; `returns` are the (normalised) discounted returns.
    """
    returns = returns.detach()
    advantage = returns - value.detach()
    ratio = torch.exp(log_prob - old_log_prob.detach())
    surr1 = ratio * advantage
    surr2 = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantage
    policy = -torch.min(surr1, surr2).mean()
    value_loss = torch.nn.functional.mse_loss(value, returns)
    ent = entropy.mean()
    loss = policy + value_coef * value_loss - entropy_coef * ent
    clipped = ((ratio - 1.0).abs() > clip).float().mean()
    return PPOLoss(loss, policy.detach(), value_loss.detach(), ent.detach(), clipped.detach())
