"""Recurrent patch-selection policies pi over the glance feature map.

Both read the glance map *detached*: V1 trains the policy alone with PPO and V2
(as in AdaFocusV2) keeps the classification loss from reshaping f_G through the
policy. Both carry a GRU hidden state across frames, so on a stream the policy
remembers where the object was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adafocus.config import AdaFocusConfig


@dataclass
class PolicyOutput:
    """One policy step. V1 fills ``logits`` (over the grid cells, row-major) and
    ``value`` (the PPO critic); V2 fills ``location`` ((x, y) in [0, 1]^2, where 0 puts
    the patch at the left/top edge and 1 at the right/bottom edge)."""

    hidden: torch.Tensor
    logits: torch.Tensor | None = None
    value: torch.Tensor | None = None
    location: torch.Tensor | None = None


class GridPolicy(nn.Module):
    """AdaFocus (V1): 1x1 conv, ReLU, linear, ReLU, GRU; actor = softmax over the
    grid of candidate patch positions, critic = linear to one value."""

    def __init__(self, in_channels: int, map_size: tuple[int, int], config: AdaFocusConfig) -> None:
        super().__init__()
        hidden = config.policy_hidden
        self.hidden_size = hidden
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, config.policy_channels, 1), nn.ReLU())
        self.embed = nn.Sequential(
            nn.Linear(config.policy_channels * map_size[0] * map_size[1], hidden), nn.ReLU())
        self.gru = nn.GRUCell(hidden, hidden)
        self.actor = nn.Linear(hidden, config.grid_cells)
        self.critic = nn.Linear(hidden, 1)

    def forward(self, fmap: torch.Tensor, hidden: torch.Tensor) -> PolicyOutput:
        x = self.embed(self.reduce(fmap.detach()).flatten(1))
        hidden = self.gru(x, hidden.to(x.dtype))
        return PolicyOutput(hidden=hidden, logits=self.actor(hidden),
                            value=self.critic(hidden).squeeze(1))


class ContinuousPolicy(nn.Module):
    """AdaFocusV2: conv1x1-BN-Tanh, linear-BN-Tanh, GRU, linear to 2 + sigmoid. Trained
    end to end through the differentiable (bilinear) crop."""

    def __init__(self, in_channels: int, map_size: tuple[int, int], config: AdaFocusConfig) -> None:
        super().__init__()
        hidden = config.policy_hidden
        self.hidden_size = hidden
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, config.policy_channels, 1, bias=False),
            nn.BatchNorm2d(config.policy_channels), nn.Tanh())
        self.embed = nn.Sequential(
            nn.Linear(config.policy_channels * map_size[0] * map_size[1], hidden, bias=False),
            nn.BatchNorm1d(hidden), nn.Tanh())
        self.gru = nn.GRUCell(hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, fmap: torch.Tensor, hidden: torch.Tensor) -> PolicyOutput:
        x = self.embed(self.reduce(fmap.detach()).flatten(1))
        hidden = self.gru(x, hidden.to(x.dtype))
        return PolicyOutput(hidden=hidden, location=torch.sigmoid(self.head(hidden)))
