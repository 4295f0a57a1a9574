"""Recurrent classifier f_C: one label distribution per frame.

A GRU (not AdaFocusV2's running max-pool) so that on an endless stream the
prediction can change when the scene does: the gates let old evidence decay.
"""

from __future__ import annotations

import torch
from torch import nn


class RecurrentClassifier(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden_size = hidden
        self.gru = nn.GRUCell(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, hidden: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """features (N, in) and hidden (N, hidden) -> (logits (N, K), new hidden)."""
        hidden = self.gru(features, hidden.to(features.dtype))
        return self.head(self.dropout(hidden)), hidden
