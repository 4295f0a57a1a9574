"""The box stages: what f_G, f_L and the policies learn from a box per frame.

A DEPARTURE from the papers (see train.config.BoxWarmupSection): a policy that
starts uniform gives PPO no reward and V2 no useful crop gradient within a CPU
budget, so before the papers' stages run, the networks are shown where the object
is. The box comes from the data's labels alone (the class-evidence map of the frame
stage's network, adafocus.train.evidence) or, for moving digits as an optional
extra, from the scene itself. Every sampler here gives `Batch.boxes`.

- `pretrain_glance`: f_G + a 1x1 locator learn which glance cell holds the box
  centre, and f_G's head the frame's label (single frames);
- `pretrain_local`: f_L + its head classify patches at the box (shifted by up to
  `jitter` px);
- `box_warmup`: the policy fitted to the box (V1: cross-entropy to the grid cell
  nearest it; V2: L1 to its location) while f_L + f_C learn on patches at the box
  for `oracle_fraction` of the frames and at the policy's own choice elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adafocus.models import AdaFocus
from adafocus.models.adafocus import Focus
from adafocus.models.crop import crop_exact
from adafocus.train.config import StageSection
from adafocus.train.loop import Batch, StageContext, Update, run_stage, trainable
from adafocus.train.stages import accuracy, freeze, sequence_ce


def box_centres(boxes):
    """Boxes (..., 4) px (x0, y0, x1, y1) -> their centres (..., 2) px (x, y); tensors
    or numpy arrays."""
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def target_location(model: AdaFocus, boxes: Tensor) -> Tensor:
    """Boxes (..., 4) in pixels -> the V2 location (..., 2) in [0, 1] of the patch
    centred on the box (clamped inside the frame)."""
    cfg = model.config
    (h, w), p = cfg.frame_size, cfg.patch_size
    cx, cy = box_centres(boxes).unbind(-1)
    return torch.stack([((cx - p / 2) / max(w - p, 1)).clamp(0, 1),
                        ((cy - p / 2) / max(h - p, 1)).clamp(0, 1)], dim=-1)


def target_cells(model: AdaFocus, location: Tensor) -> Tensor:
    """V1: the grid cell (...,) whose patch origin is nearest each target location."""
    cells = torch.arange(model.config.grid_cells, device=location.device)
    grid = model.focus_from_cells(cells).location  # (G, 2)
    return (location[..., None, :] - grid).square().sum(-1).argmin(-1)


def pretrain_glance(ctx: StageContext, model: AdaFocus, locator: nn.Conv2d,
                    section: StageSection) -> dict[str, float]:
    """f_G + `locator` (1x1 conv to one logit per glance-map cell) learn which cell holds
    the box centre, f_G's head the label; `ctx.sample(step)` gives single frames."""
    h, w = model.glance.map_size
    fh, fw = model.config.frame_size

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.glance.train()
        fmap, pooled = model.glance_features(batch.frames[:, 0])
        logits = locator(fmap).flatten(1).float()
        centre = box_centres(batch.boxes[:, 0])
        cx = (centre[:, 0] * w / fw).long().clamp(0, w - 1)
        cy = (centre[:, 1] * h / fh).long().clamp(0, h - 1)
        target = cy * w + cx
        loss = F.cross_entropy(logits, target) + sequence_ce(
            model.glance_head(pooled)[:, None], batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": float((logits.argmax(1) == target).float().mean())}

    return run_stage(ctx, "pretrain.glance", section,
                     [{"params": trainable(model.glance, model.glance_head, locator)}], step)


def pretrain_local(ctx: StageContext, model: AdaFocus, section: StageSection, jitter: int
                   ) -> dict[str, float]:
    """f_L + its head as a patch classifier on patches at the box of single frames,
    moved by up to `jitter` px (a patch always inside the frame)."""
    (h, w), p = model.config.frame_size, model.config.patch_size

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.local.train()
        centre = box_centres(batch.boxes[:, 0])
        shift = torch.randint(-jitter, jitter + 1, centre.shape, device=centre.device)
        origin = (centre + shift - p / 2).round().long()
        origin = torch.stack([origin[:, 0].clamp(0, w - p), origin[:, 1].clamp(0, h - p)], 1)
        patches = crop_exact(batch.frames[:, 0], origin, p)
        logits = model.local_head(model.local_features(patches))
        loss = sequence_ce(logits[:, None], batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits.detach()[:, None], batch.labels)}

    return run_stage(ctx, "pretrain.local", section,
                     [{"params": trainable(model.local, model.local_head)}], step)


def box_warmup(ctx: StageContext, name: str, model: AdaFocus, section: StageSection,
               oracle_fraction: float) -> dict[str, float]:
    """Policy fitted to the box (V1: CE to the nearest grid cell; V2: L1 to the
    location), f_L + f_C on patches at the box for `oracle_fraction` of the frames and
    at the policy's own (detached) choice otherwise; f_G frozen. `ctx.sample(step)`
    gives sequences with boxes."""
    v1 = model.config.policy == "v1"

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        freeze(model.glance)
        frames = batch.frames
        b, steps = frames.shape[:2]
        flat = frames.flatten(0, 1)
        with torch.no_grad():
            fmaps, g_pooled = model.glance_features(flat)
        fmaps, g_pooled = fmaps.unflatten(0, (b, steps)), g_pooled.unflatten(0, (b, steps))
        hidden, _ = model.initial_state(b, frames.device)
        outs = []
        for t in range(steps):
            out = model.policy_step(fmaps[:, t], hidden)
            hidden = out.hidden
            outs.append(out)
        target = target_location(model, batch.boxes)
        oracle = torch.rand(b * steps, device=frames.device) < oracle_fraction
        if v1:
            logits = torch.stack([o.logits.float() for o in outs], 1)
            cells = target_cells(model, target)
            policy_loss = F.cross_entropy(logits.flatten(0, 1), cells.flatten())
            hit = float((logits.argmax(-1) == cells).float().mean())
            chosen = torch.where(oracle, cells.flatten(), logits.argmax(-1).flatten())
            focus = model.focus_from_cells(chosen)
        else:
            location = torch.stack([o.location.float() for o in outs], 1)
            policy_loss = F.l1_loss(location, target)
            hit = float(((location - target).abs().amax(-1) < 0.1).float().mean())
            focus = Focus(location=torch.where(oracle[:, None], target.flatten(0, 1),
                                               location.detach().flatten(0, 1)))
        l_pooled = model.local_features(model.crop(flat, focus)).unflatten(0, (b, steps))
        _, hidden = model.initial_state(b, frames.device)
        step_logits = []
        for t in range(steps):
            logit, hidden = model.classifier_step(g_pooled[:, t], l_pooled[:, t], hidden)
            step_logits.append(logit)
        logits_c = torch.stack(step_logits, 1)
        loss = (sequence_ce(logits_c, batch.labels)
                + sequence_ce(model.local_head(l_pooled), batch.labels) + policy_loss)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits_c.detach(), batch.labels),
                "hit": hit}

    groups = [{"params": trainable(model.policy, model.local, model.local_head,
                                   model.classifier)}]
    return run_stage(ctx, name, section, groups, step)
