"""What a training run starts from: random weights, torchvision backbone files
(`model.glance_weights` / `model.local_weights`) and/or a checkpoint (`model.init`,
`train --init`), applied to every model of the run before its stages (a resumed run
then overwrites them with its saved state).

Fine-tuning from a checkpoint (e.g. builtin:digits onto a user's own classes):
every tensor of the checkpoint's AdaFocus whose name and shape the run's models
share is copied: into V1, V2 and the random-patch model whole (the policy only into
a model of the checkpoint's policy kind: a V1 grid policy is no start for a V2
continuous one), into the baselines' backbones (glance-only: f_G; full-frame: f_L)
and into the frame stage's network (f_L, its head from the checkpoint's f_L head).
When the class names differ, the class-dependent heads start fresh. Any other
tensor that does not fit (another preset, another glance map size) is an error
naming it, never silently skipped: a run that quietly dropped half the checkpoint
would look like fine-tuning and be training from scratch.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from adafocus.checkpoint import load_checkpoint
from adafocus.config import AdaFocusConfig
from adafocus.interface import CheckpointError
from adafocus.models import AdaFocus
from adafocus.models.baselines import FullFrame, GlanceOnly
from adafocus.models.local import LocalNet
from adafocus.models.pretrained import load_torchvision_backbone
from adafocus.train.config import ModelSection

HEADS = ("classifier.head.", "glance_head.", "local_head.")  # depend on the class count


class FrameNet(nn.Module):
    """The frame stage's network (adafocus.train.stages.frame_classifier): f_L and a
    linear head on its max-pooled whole-frame features. It starts f_L and the
    full-frame baseline and gives the label-only boxes; kept in the run's state,
    never shipped."""

    def __init__(self, config: AdaFocusConfig) -> None:
        super().__init__()
        self.local = LocalNet(config)
        self.head = nn.Linear(self.local.out_features, config.num_classes)


def backbone_weights(section: ModelSection, models: dict[str, nn.Module]) -> dict[str, str]:
    """Load the torchvision backbone files into every f_G / f_L of the run; returns
    what was loaded, for the checkpoint's training summary."""
    loaded = {}
    for key, part in (("glance_weights", "glance"), ("local_weights", "local")):
        path = getattr(section, key)
        if path is None:
            continue
        for model in models.values():
            net = _part(model, part)
            if net is not None:
                load_torchvision_backbone(net, path)
        loaded[key] = path
    return loaded


def _part(model: nn.Module, part: str) -> nn.Module | None:
    """The f_G ("glance") or f_L ("local") network of a run's model, if it has one."""
    if isinstance(model, AdaFocus):
        return getattr(model, part)
    if isinstance(model, FrameNet):
        return model.local if part == "local" else None
    if isinstance(model, GlanceOnly if part == "glance" else FullFrame):
        return model.backbone
    return None


def init_from_checkpoint(spec: str, models: dict[str, nn.Module], class_names: list[str]
                         ) -> dict[str, Any]:
    """Copy a checkpoint's weights into the run's models (see the module doc); returns
    a plain-data summary. CheckpointError naming every tensor that does not fit."""
    ck = load_checkpoint(spec)
    fresh_heads = list(ck.class_names) != list(class_names)
    source = ck.state_dict
    misfits: list[str] = []
    loads: list[tuple[nn.Module, dict[str, Any]]] = []
    for name, model in models.items():
        if isinstance(model, AdaFocus):
            same_policy = model.config.policy == ck.config.policy
            wanted = {k: k for k in model.state_dict()
                      if (same_policy or not k.startswith("policy."))
                      and not (fresh_heads and k.startswith(HEADS))}
        elif isinstance(model, FrameNet):
            wanted = {k: k if k.startswith("local.") else f"local_{k}"
                      for k in model.state_dict()
                      if k.startswith("local.") or not fresh_heads}
        else:
            part = "glance" if isinstance(model, GlanceOnly) else "local"
            if _part(model, part) is None:
                continue  # the box locator: never in a checkpoint
            wanted = {k: f"{part}.{k[len('backbone.'):]}" for k in model.state_dict()
                      if k.startswith("backbone.")}
        own = model.state_dict()
        misfits += [f"{name}.{k} {tuple(own[k].shape)} vs {src} "
                    f"{tuple(source[src].shape) if src in source else 'absent'}"
                    for k, src in wanted.items()
                    if src not in source or source[src].shape != own[k].shape]
        loads.append((model, {k: source.get(src) for k, src in wanted.items()}))
    if misfits:
        raise CheckpointError(
            f"{ck.path}: does not fit this run's models ({len(misfits)} tensors, e.g. "
            f"{'; '.join(misfits[:3])}); it was trained with frames {ck.config.frame_size}, "
            f"glance {ck.config.glance_size}, preset {ck.config.name!r}: set "
            "model.overrides to match (videos are letterboxed into frame_size)")
    for model, state in loads:
        model.load_state_dict(state, strict=False)
    return {"init": str(spec), "classes": list(ck.class_names),
            "heads": "re-initialised (other classes)" if fresh_heads else "kept"}


__all__ = ["HEADS", "FrameNet", "backbone_weights", "init_from_checkpoint"]
