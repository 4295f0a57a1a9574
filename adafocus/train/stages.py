"""The training stages of the papers, in the order the runner chains them.

0. The papers start f_G and f_L from ImageNet weights, then fine-tune them as frame
   classifiers; here, from nothing but the clip labels: f_L with a linear head on
   whole frames (`frame_classifier`, global max pooling, augmented frames), which
   also gives the label-only boxes (adafocus.train.evidence). Then the baselines:
   f_G + classifier on the glance (glance-only) and f_L + classifier on the whole
   frame (full-frame). They are evaluation baselines and initialise V1 and V2.
V1 (AdaFocus, ICCV 2021):
   1. warm-up: f_L and f_C on random patches, f_G frozen;
   2. PPO: the grid policy alone, reward p(y | chosen) - p(y | random patch);
   3. fine-tune f_L and f_C with the learned policy fixed (argmax).
V2 (AdaFocusV2, CVPR 2022): everything end to end through the differentiable
   crop, every batch also run with random patches, auxiliary CE heads on f_G and
   f_L, reference LR multipliers.
The box stages between them (a departure from the papers) are adafocus.train.boxes.

Every loss is a cross-entropy on EVERY step of a causal sequence whose label
may change mid-sequence, so the recurrent state learns to follow changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adafocus.models import AdaFocus
from adafocus.models.baselines import RecurrentBaseline
from adafocus.models.local import LocalNet
from adafocus.train.config import (
    FrameSection,
    FullBaselineSection,
    PPOSection,
    StageSection,
    V2Section,
)
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


def freeze(*modules: nn.Module) -> None:
    """Frozen parts run in eval mode (BN statistics fixed) without gradients."""
    for m in modules:
        m.eval()
        m.requires_grad_(False)


def frame_classifier(ctx: StageContext, local: LocalNet, head: nn.Linear,
                     section: FrameSection) -> dict[str, float]:
    """f_L + a linear head on single whole frames, features max-pooled over the frame
    (one small object among clutter would be diluted by averaging); `ctx.sample`
    gives one-frame sequences."""
    def step(batch: Batch, update: Update) -> dict[str, float]:
        local.train()
        logits = head(local.feature_map(batch.frames[:, 0]).amax(dim=(2, 3)))[:, None]
        loss = sequence_ce(logits, batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits.detach(), batch.labels)}

    return run_stage(ctx, "frames.full", section, [{"params": trainable(local, head)}], step)


def train_baseline(ctx: StageContext, name: str, model: RecurrentBaseline,
                   section: StageSection | FullBaselineSection,
                   init_from: nn.Module | None = None) -> dict[str, float]:
    """`init_from`: a backbone whose weights start this baseline's. A section's
    `backbone_lr` 0 keeps the backbone frozen (eval mode, no gradients)."""
    backbone_lr = getattr(section, "backbone_lr", 1.0)

    def start() -> None:
        if init_from is not None:
            model.backbone.load_state_dict(init_from.state_dict())

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        if not backbone_lr:
            freeze(model.backbone)
        logits = model.forward_clip(batch.frames)
        loss = sequence_ce(logits, batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(logits.detach(), batch.labels)}

    groups = [{"params": trainable(model.classifier)}]
    if backbone_lr:
        groups.append({"params": trainable(model.backbone), "lr_mult": backbone_lr})
    return run_stage(ctx, name, section, groups, step, on_start=start)


def v1_warmup(ctx: StageContext, model: AdaFocus, glance: RecurrentBaseline,
              section: StageSection, local_aux: float = 0.0) -> dict[str, float]:
    """f_G from the glance-only baseline (frozen); f_L as pretrained."""
    def start() -> None:
        model.glance.load_state_dict(glance.backbone.state_dict())

    step, groups = _patch_classifier(model, "random", local_aux)
    return run_stage(ctx, "v1.warmup", section, groups, step, on_start=start)


def _patch_classifier(model: AdaFocus, patch_source: str, local_aux: float
                      ) -> tuple[Callable[..., dict[str, float]], list[dict]]:
    """V1's stages 1 and 3 share one step: f_L and f_C learn on patches from
    `patch_source` ("random" in the warm-up, the fixed learned "policy" in
    fine-tuning) while f_G and the policy stay frozen; `local_aux` weighs f_L's own
    head's loss (config.V1Section). Returns (step, parameter groups)."""

    def step(batch: Batch, update: Update) -> dict[str, float]:
        model.train()
        freeze(model.glance, model.policy)
        out = model.forward_clip(batch.frames, patch_source)
        loss = sequence_ce(out.logits, batch.labels)
        if local_aux:
            loss = loss + local_aux * sequence_ce(out.local_logits, batch.labels)
        update(loss)
        return {"loss": loss.item(), "acc": accuracy(out.logits.detach(), batch.labels)}

    heads = (model.local_head,) if local_aux else ()
    return step, [{"params": trainable(model.local, model.classifier, *heads)}]


def v1_ppo(ctx: StageContext, model: AdaFocus, section: PPOSection) -> dict[str, float]:
    """Policy only; f_G, f_L, f_C fixed (eval mode). One rollout of the whole
    sequence per batch (sampled cells), then `epochs` PPO updates on it."""

    def step(batch: Batch, update: Update) -> dict[str, float]:
        freeze(model)
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


def v1_finetune(ctx: StageContext, model: AdaFocus, section: StageSection,
                local_aux: float = 0.0) -> dict[str, float]:
    step, groups = _patch_classifier(model, "policy", local_aux)
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
