"""The training stages, in the order the runner chains them.

0. f_L pretraining on patches around the digit (our stand-in for the ImageNet
   weights the papers start from), then the baselines (the reference's stage 0):
   f_G + classifier head on the glance
   (glance-only) and f_L + head on the whole frame (full-frame). They are the
   evaluation baselines and initialise f_G / f_L of V1 and V2.
V1 (AdaFocus, ICCV 2021):
   1. warm-up: f_L and f_C on random patches, f_G frozen;
   2. PPO: the grid policy alone, reward p(y | chosen) - p(y | random patch);
   3. fine-tune f_L and f_C with the learned policy fixed (argmax).
V2 (AdaFocusV2, CVPR 2022): everything end to end through the differentiable
   crop, every batch also run with random patches, auxiliary CE heads on f_G and
   f_L, reference LR multipliers.
Box warm starts (a departure from the papers; only sources that know the digit box,
   see train.config.BoxWarmupSection): f_G learns where the digit is before the
   baselines (`pretrain_glance`), and before V1's PPO and V2's end-to-end stage the
   policy is fitted to the box while f_L / f_C learn on patches at the box
   (`box_warmup`). Without them a uniform policy gives PPO no reward and V2 no
   useful crop gradient within a CPU budget.

Every loss is a cross-entropy on EVERY step of a causal sequence whose label
may change mid-sequence, so the recurrent state learns to follow changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adafocus.models import AdaFocus
from adafocus.models.adafocus import Focus
from adafocus.models.baselines import RecurrentBaseline
from adafocus.train.config import PPOSection, StageSection, V2Section
from adafocus.train.loop import Batch, StageContext, Update, run_stage, trainable
from adafocus.train.ppo import discounted_returns, normalise, ppo_loss

IGNORE = -1


def sequence_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over every (sequence, step) with a label."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    mask = labels != IGNORE
    if not mask.any():
        return 0.0
    return float((logits.argmax(-1) == labels)[mask].float().mean())


def _freeze(*modules: nn.Module) -> None:
    """Frozen parts run in eval mode (BN statistics fixed) without gradients."""
    for m in modules:
        m.eval()
        m.requires_grad_(False)


def pretrain_local(ctx: StageContext, model: AdaFocus, section: StageSection
                   ) -> dict[str, float]:
    """f_L + its auxiliary head as a patch classifier; `ctx.sample` gives object patches."""
    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.local.train()
        logits = model.local_head(model.local_features(batch.frames[:, 0]))
        loss = F.cross_entropy(logits, batch.labels[:, 0])
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits.detach()[:, None], batch.labels)}

    return run_stage(ctx, "pretrain.local", section,
                     [{"params": trainable(model.local, model.local_head)}], step)


def train_baseline(ctx: StageContext, name: str, model: RecurrentBaseline,
                   section: StageSection, init_from: nn.Module | None = None
                   ) -> dict[str, float]:
    """`init_from`: a backbone whose weights start this baseline's (f_L pretraining)."""
    def start() -> None:
        if init_from is not None:
            model.backbone.load_state_dict(init_from.state_dict())

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        logits = model.forward_clip(batch.frames)
        loss = sequence_ce(logits, batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits.detach(), batch.labels)}

    return run_stage(ctx, name, section, [{"params": trainable(model)}], step, on_start=start)


def v1_warmup(ctx: StageContext, model: AdaFocus, glance: RecurrentBaseline,
              section: StageSection) -> dict[str, float]:
    """f_G from the glance-only baseline (frozen); f_L as pretrained."""
    def start() -> None:
        model.glance.load_state_dict(glance.backbone.state_dict())

    groups = [{"params": trainable(model.local, model.classifier)}]
    step = _patch_classifier_step(model, "random")
    return run_stage(ctx, "v1.warmup", section, groups, step, on_start=start)


def _patch_classifier_step(model: AdaFocus, patch_source: str) -> Callable[..., dict[str, float]]:
    """V1's stages 1 and 3 share one step: f_L and f_C learn on patches from
    `patch_source` ("random" in the warm-up, the fixed learned "policy" in
    fine-tuning) while f_G and the policy stay frozen."""

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        _freeze(model.glance, model.policy)
        out = model.forward_clip(batch.frames, patch_source)
        loss = sequence_ce(out.logits, batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(out.logits.detach(), batch.labels)}

    return step


def v1_ppo(ctx: StageContext, model: AdaFocus, section: PPOSection) -> dict[str, float]:
    """Policy only; f_G, f_L, f_C fixed (eval mode). One rollout of the whole
    sequence per batch (sampled cells), then `epochs` PPO updates on it."""

    def step(batch: Batch, update: Update) -> dict[str, float]:
        _freeze(model)
        model.policy.train()
        with torch.no_grad():
            out = model.forward_clip(batch.frames, "policy", sample=True, random_baseline=True)
        labels = batch.labels.clamp(min=0)  # unlabelled steps: reward masked below
        mask = (batch.labels != IGNORE).float()
        rewards = model.ppo_rewards(out, labels) * mask
        returns = normalise(discounted_returns(rewards, section.gamma))
        model.policy.requires_grad_(True)
        for _ in range(section.epochs):
            log_prob, value, entropy = model.evaluate_actions(out.glance_maps, out.cells)
            parts = ppo_loss(log_prob, out.log_probs, value, returns, entropy, clip=section.clip,
                             value_coef=section.value_coef, entropy_coef=section.entropy_coef)
            update(parts.loss)
        return {"reward": float(rewards.sum() / mask.sum().clamp(min=1)),
                "acc": accuracy(out.logits, batch.labels), "entropy": parts.entropy.item()}

    groups = [{"params": list(model.policy.parameters())}]
    return run_stage(ctx, "v1.ppo", section, groups, step)


def v1_finetune(ctx: StageContext, model: AdaFocus, section: StageSection) -> dict[str, float]:
    groups = [{"params": trainable(model.local, model.classifier)}]
    step = _patch_classifier_step(model, "policy")
    return run_stage(ctx, "v1.finetune", section, groups, step)


def v2_train(ctx: StageContext, model: AdaFocus, init_from: AdaFocus | None,
             section: V2Section) -> dict[str, float]:
    """End to end. Starts from the V1 warm-up's f_G, f_L, f_C (our stand-in for the
    ImageNet-pretrained backbones the V2 paper starts from); the policy is new."""

    def start() -> None:
        if init_from is None:  # already initialised (and box-warmed) by the runner
            return
        state = {k: v for k, v in init_from.state_dict().items() if not k.startswith("policy.")}
        model.load_state_dict(state, strict=False)

    def loss_of(out, labels: Tensor) -> Tensor:
        return (sequence_ce(out.logits, labels) + sequence_ce(out.glance_logits, labels)
                + sequence_ce(out.local_logits, labels))

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        out = model.forward_clip(batch.frames, "policy")
        rand = model.forward_clip(batch.frames, "random")
        loss = 0.5 * (loss_of(out, batch.labels) + loss_of(rand, batch.labels))
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(out.logits.detach(), batch.labels)}

    groups = [
        {"params": trainable(model.glance), "lr_mult": section.lr_glance},
        {"params": trainable(model.policy), "lr_mult": section.lr_policy},
        {"params": trainable(model.local, model.local_head)},
        {"params": trainable(model.classifier, model.glance_head),
         "lr_mult": section.lr_classifier},
    ]
    return run_stage(ctx, "v2.train", section.train, groups, step, on_start=start)


def target_location(model: AdaFocus, boxes: Tensor) -> Tensor:
    """Digit boxes (..., 4) in pixels -> the V2 location (..., 2) in [0, 1] of the
    patch centred on the digit (clamped inside the frame)."""
    cfg = model.config
    (h, w), p = cfg.frame_size, cfg.patch_size
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
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
    the digit's centre; `ctx.sample(step)` gives (single-frame Batch, boxes)."""
    h, w = model.glance.map_size
    fh, fw = model.config.frame_size

    def step(batch_boxes, update: Update) -> dict[str, float]:
        batch, boxes = batch_boxes
        model.glance.train()
        fmap, _ = model.glance_features(batch.frames[:, 0])
        logits = locator(fmap).flatten(1)
        cx = ((boxes[:, 0, 0] + boxes[:, 0, 2]) / 2 * w / fw).long().clamp(0, w - 1)
        cy = ((boxes[:, 0, 1] + boxes[:, 0, 3]) / 2 * h / fh).long().clamp(0, h - 1)
        target = cy * w + cx
        loss = F.cross_entropy(logits, target)
        update(loss)
        return {"loss": loss.item(), "acc": float((logits.argmax(1) == target).float().mean())}

    return run_stage(ctx, "pretrain.glance", section,
                     [{"params": trainable(model.glance, locator)}], step)


def box_warmup(ctx: StageContext, name: str, model: AdaFocus, section: StageSection,
               oracle_fraction: float) -> dict[str, float]:
    """Policy fitted to the digit box (V1: CE to the nearest grid cell; V2: L1 to the
    location), f_L + f_C on patches at the box for `oracle_fraction` of the frames and
    at the policy's own (detached) choice otherwise; f_G frozen.
    `ctx.sample(step)` gives (Batch, boxes (B, T, 4))."""
    v1 = model.config.policy == "v1"

    def step(batch_boxes, update: Update) -> dict[str, float]:
        batch, boxes = batch_boxes
        model.train()
        _freeze(model.glance)
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
        target = target_location(model, boxes)
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
