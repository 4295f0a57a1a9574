"""The one optimisation loop every stage uses: seeded steps, a progress bar (and
the whole run's progress line, adafocus.train.progress), periodic resumable
saves, cosine learning-rate decay, the run's precision (adafocus.train.precision:
forward passes under bfloat16 autocast where chosen, backward passes outside it).

A stage is a name, an optimiser over some parameter groups and a `step`
function that turns one batch into losses. The loop owns everything else, so
stages differ only in what they compute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from adafocus.train.config import StageSection
from adafocus.train.precision import autocast, outside_autocast
from adafocus.train.progress import RunProgress
from adafocus.train.state import RunState, seed_step


@dataclass
class Batch:
    """One batch of causal sequences on the training device.

    frames: (B, T, 3, H, W) normalised float; labels: (B, T) int64, -1 = no label
    (unlabelled stretches of user videos), ignored by the losses; boxes: (B, T, 4)
    pixel (x0, y0, x1, y1) of the object in each frame, for the box stages
    (adafocus.train.boxes), else None.
    """

    frames: Tensor
    labels: Tensor
    boxes: Tensor | None = None


Update = Callable[[Tensor], None]
StepFn = Callable[[Batch, Update], dict[str, float]]


@dataclass
class StageContext:
    """What every stage shares: the run state, the seed, the batch sampler, progress
    (`progress`: per-stage bars; `tracker`: the whole run's line with its estimate),
    the device and the resolved precision ("float32" or "bfloat16")."""

    run: RunState
    seed: int
    sample: Callable[[int], Batch]
    save_every: int
    progress: bool = True
    log: Callable[[str], None] = print
    tracker: RunProgress | None = None
    device: torch.device = torch.device("cpu")
    precision: str = "float32"


def run_stage(ctx: StageContext, name: str, section: StageSection | Any,
              groups: Iterable[dict[str, Any]], step_fn: StepFn,
              on_start: Callable[[], None] | None = None, max_grad_norm: float = 5.0
              ) -> dict[str, float]:
    """Run `section.steps` optimisation steps of one stage (or resume it).

    `groups` are torch.optim parameter groups (each may carry an "lr" multiplier
    under "lr_mult"). `on_start` runs once when the stage starts from step 0 (not on
    resume), e.g. to copy weights from an earlier stage. `step_fn(batch, update)`
    computes the losses, calls `update(loss)` one or more times and returns numbers
    to log. Returns the stage's summary (mean of the logged numbers over its last
    quarter) once, and on later calls the stored one.
    """
    run = ctx.run
    if run.is_done(name):
        return run.done[name]
    groups = [dict(g) for g in groups]
    params = [p for g in groups for p in g["params"]]
    for g in groups:
        g["lr"] = section.lr * g.pop("lr_mult", 1.0)
    weight_decay = getattr(section, "weight_decay", 0.0)
    optimizer = torch.optim.AdamW(groups, lr=section.lr, weight_decay=weight_decay)
    total = max(section.steps, 1)
    warm = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / total)))
    start = run.resume(name, optimizer, scheduler)
    if start == 0 and on_start is not None:
        on_start()
    if ctx.tracker is not None:
        ctx.tracker.begin(name, start)
    elif start:
        ctx.log(f"{name}: resuming at step {start}/{section.steps}")

    def update(loss: Tensor) -> None:
        with outside_autocast(ctx.device):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()

    history: list[dict[str, float]] = []
    bar = tqdm(range(start, section.steps), initial=start, total=section.steps, desc=name,
               disable=not ctx.progress, dynamic_ncols=True, leave=True)
    smooth: dict[str, float] = {}
    for step in bar:
        seed_step(ctx.seed, name, step)
        batch = ctx.sample(step)
        with autocast(ctx.precision, ctx.device):
            logs = step_fn(batch, update)
        scheduler.step()
        history.append(logs)
        smooth = {k: v if k not in smooth else 0.9 * smooth[k] + 0.1 * v for k, v in logs.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in smooth.items()}, refresh=False)
        if ctx.tracker is not None:
            ctx.tracker.advance()
        if (step + 1) % ctx.save_every == 0 and step + 1 < section.steps:
            run.save(name, step + 1, optimizer, scheduler)
    bar.close()
    tail = history[-max(1, len(history) // 4):]
    summary = {k: float(np.mean([h[k] for h in tail])) for k in tail[0]} if tail else {}
    summary["steps"] = float(section.steps)
    run.finish(name, summary)
    if ctx.tracker is not None:
        ctx.tracker.end(name)
    return summary


def trainable(*modules: torch.nn.Module) -> list[Tensor]:
    """Parameters of `modules`, all set to require grad."""
    params = []
    for m in modules:
        m.requires_grad_(True)
        params += list(m.parameters())
    return params
