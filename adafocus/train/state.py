"""Resumable training: one state file, rewritten atomically every few steps.

What makes a resumed run give the same weights as an uninterrupted one:
- every step seeds torch/numpy from (seed, stage, step) (`seed_step`), so the
  batch and the random patches of step k do not depend on what ran before;
- the state file holds every module's weights, the running stage's optimizer
  and LR-scheduler state, the step reached and the finished stages' results.
It is a plain `torch.load(weights_only=True)` file, like the checkpoints.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

STATE_FORMAT = 1


class ResumeError(ValueError):
    """A state file that belongs to another config or is unreadable."""


def seed_step(seed: int, stage: str, step: int) -> np.random.Generator:
    """Seed torch, numpy and random for one step; return a numpy Generator for its batch."""
    key = [seed, zlib.crc32(stage.encode()), step]
    s = int(np.random.SeedSequence(key).generate_state(1)[0])
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)
    return np.random.default_rng(key)


class RunState:
    """Progress of one training run over named stages, persisted in `path`.

    A saved state resumes only under the same config: `upgrade` first brings the
    config the state was saved with up to date (e.g. fills keys added since with
    their defaults), so that a run interrupted before an upgrade still resumes."""

    def __init__(self, path: str | Path, config: dict[str, Any], modules: dict[str, nn.Module],
                 upgrade: Callable[[dict[str, Any]], dict[str, Any]] = lambda saved: saved):
        self.path = Path(path)
        self.config = config
        self._upgrade = upgrade
        self.modules = modules
        self.done: dict[str, dict[str, Any]] = {}  # stage -> results
        self._stage: str | None = None
        self._step = 0
        self._optim: dict[str, Any] | None = None
        self._sched: dict[str, Any] | None = None

    def load(self) -> bool:
        """Restore from `path` if it exists; False when starting fresh."""
        if not self.path.exists():
            return False
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
            raise ResumeError(f"{self.path}: unreadable training state ({exc})") from None
        if blob.get("format") != STATE_FORMAT:
            raise ResumeError(f"{self.path}: state format {blob.get('format')!r}, "
                              f"expected {STATE_FORMAT}")
        if self._upgrade(blob["config"]) != self.config:
            raise ResumeError(f"{self.path}: saved by a run with a different train config; "
                              "delete it or pass a different output path")
        for name, module in self.modules.items():
            module.load_state_dict(blob["modules"][name])
        self.done = dict(blob["done"])
        self._stage, self._step = blob["stage"], int(blob["step"])
        self._optim, self._sched = blob["optimizer"], blob["scheduler"]
        return True

    def is_done(self, stage: str) -> bool:
        return stage in self.done

    def resume(self, stage: str, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> int:
        """The step to start `stage` at; restores its optimizer/scheduler when it was running."""
        if self._stage != stage or self._optim is None:
            return 0
        optimizer.load_state_dict(self._optim)
        if scheduler is not None and self._sched is not None:
            scheduler.load_state_dict(self._sched)
        return self._step

    def save(self, stage: str, step: int, optimizer: torch.optim.Optimizer | None = None,
             scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
        """Write the state atomically (tmp file + rename: a kill never leaves half a file)."""
        self._stage, self._step = stage, step
        self._optim = optimizer.state_dict() if optimizer is not None else None
        self._sched = scheduler.state_dict() if scheduler is not None else None
        blob = {"format": STATE_FORMAT, "config": self.config,
                "modules": {n: m.state_dict() for n, m in self.modules.items()},
                "done": self.done, "stage": stage, "step": step,
                "optimizer": self._optim, "scheduler": self._sched}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, self.path)

    def finish(self, stage: str, results: dict[str, Any]) -> None:
        """Mark `stage` complete with its (plain-data) results and persist."""
        self.done[stage] = results
        self.save(stage, 0)
