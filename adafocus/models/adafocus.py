"""The AdaFocus module: glance, focus on one patch, classify, recurrently.

The public methods below are the building blocks that training, evaluation and the
online API all use, so the three cannot drift apart:

    glance_features  -> policy_step -> locate -> crop -> local_features -> classifier_step

``forward_clip`` chains them over a clip (B, T, C, H, W); ``OnlineAdaFocus`` chains
them one frame at a time per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from adafocus.config import AdaFocusConfig
from adafocus.models.classifier import RecurrentClassifier
from adafocus.models.crop import crop_bilinear, crop_exact, grid_origins, patch_boxes
from adafocus.models.glance import GlanceNet
from adafocus.models.local import LocalNet
from adafocus.models.policy import ContinuousPolicy, GridPolicy, PolicyOutput

PatchSource = Literal["policy", "random", "center"]


@dataclass
class Focus:
    """Where the patch goes for each of N frames.

    ``location`` (N, 2) is (x, y) in [0, 1]^2 (see adafocus.models.crop). With the V1
    policy ``cells`` holds the grid cell indices and ``origins`` the integer top-left
    corners, and the crop is an exact slice; with V2 both are None and the crop is
    bilinear (differentiable w.r.t. ``location``).
    """

    location: torch.Tensor
    cells: torch.Tensor | None = None
    origins: torch.Tensor | None = None


@dataclass
class ClipOutput:
    """Everything one pass over a clip produces; (B, T, ...) throughout.

    ``logits`` are the recurrent classifier's (the model's prediction at every step);
    ``glance_logits`` / ``local_logits`` come from the auxiliary linear heads on the
    pooled f_G / f_L features (AdaFocusV2's extra losses). V1 policy runs also fill the
    PPO fields; ``random_logits`` (with ``random_baseline=True``) is the classifier's
    output at each step for a random patch from the *same* recurrent state, the baseline
    of the V1 reward p(y | chosen patch) - p(y | random patch).
    """

    logits: torch.Tensor
    glance_logits: torch.Tensor
    local_logits: torch.Tensor
    locations: torch.Tensor
    boxes: torch.Tensor
    glance_maps: torch.Tensor
    cells: torch.Tensor | None = None
    policy_logits: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    random_logits: torch.Tensor | None = None


class AdaFocus(nn.Module):
    """Glance network f_G, patch policy pi (V1 grid or V2 continuous), local network
    f_L, recurrent classifier f_C, plus auxiliary heads on f_G and f_L features."""

    def __init__(self, config: AdaFocusConfig) -> None:
        super().__init__()
        self.config = config
        self.glance = GlanceNet(config)
        self.local = LocalNet(config)
        policy_cls = GridPolicy if config.policy == "v1" else ContinuousPolicy
        self.policy = policy_cls(self.glance.out_channels, self.glance.map_size, config)
        glance_dim, local_dim = self.glance.out_channels, self.local.out_features
        self.classifier = RecurrentClassifier(glance_dim + local_dim, config.classifier_hidden,
                                              config.num_classes, config.dropout)
        self.glance_head = nn.Linear(glance_dim, config.num_classes)
        self.local_head = nn.Linear(local_dim, config.num_classes)

    # ---- building blocks -------------------------------------------------------

    def initial_state(self, batch: int, device: torch.device | str | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (policy hidden, classifier hidden) for a new clip or stream."""
        device = device if device is not None else self.classifier.head.weight.device
        return (torch.zeros(batch, self.policy.hidden_size, device=device),
                torch.zeros(batch, self.classifier.hidden_size, device=device))

    def glance_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f_G on full-resolution frames (N, 3, H, W) -> (map (N, C, h, w), pooled (N, C))."""
        return self.glance(frames)

    def policy_step(self, glance_map: torch.Tensor, hidden: torch.Tensor) -> PolicyOutput:
        """One recurrent policy step (V1: grid logits, value; V2: location)."""
        return self.policy(glance_map, hidden)

    def locate(self, batch: int, source: PatchSource = "policy", policy: PolicyOutput | None = None,
               sample: bool = False, generator: torch.Generator | None = None,
               device: torch.device | None = None) -> Focus:
        """Turn a policy output (or a random / centre choice) into a Focus.

        V1 takes the argmax cell, or samples from the softmax when ``sample`` (PPO
        rollouts). ``generator`` makes random and sampled choices reproducible.
        """
        cfg = self.config
        device = device if device is not None else self.classifier.head.weight.device
        if source == "policy":
            if policy is None:
                raise ValueError("source='policy' needs the PolicyOutput of policy_step")
            if cfg.policy == "v2":
                return Focus(location=policy.location)
            logits = policy.logits.float()
            if sample:
                cells = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
            else:
                cells = logits.argmax(-1)
        elif source == "random":
            if cfg.policy == "v2":
                return Focus(location=torch.rand(batch, 2, device=device, generator=generator))
            cells = torch.randint(cfg.grid_cells, (batch,), device=device, generator=generator)
        elif source == "center":
            if cfg.policy == "v2":
                return Focus(location=torch.full((batch, 2), 0.5, device=device))
            rows, cols = cfg.policy_grid
            cells = torch.full((batch,), (rows // 2) * cols + cols // 2, device=device)
        else:
            raise ValueError(f"patch source must be 'policy', 'random' or 'center', got {source!r}")
        return self.focus_from_cells(cells)

    def focus_from_cells(self, cells: torch.Tensor) -> Focus:
        """V1: grid cell indices (N,) -> Focus with exact integer origins.

        The spans are Python numbers, not a tensor made on the fly: creating a CUDA
        tensor from host data would make the host wait for the GPU mid-step.
        """
        cfg = self.config
        origins = grid_origins(cells, cfg.policy_grid, cfg.frame_size, cfg.patch_size)
        span_x = max(cfg.frame_size[1] - cfg.patch_size, 1)
        span_y = max(cfg.frame_size[0] - cfg.patch_size, 1)
        location = torch.stack([origins[:, 0].float() / span_x, origins[:, 1].float() / span_y],
                               dim=1)
        return Focus(location=location, cells=cells, origins=origins)

    def crop(self, frames: torch.Tensor, focus: Focus) -> torch.Tensor:
        """Batched crop of the full-resolution frames (N, 3, H, W) -> (N, 3, P, P)."""
        if focus.origins is not None:
            return crop_exact(frames, focus.origins, self.config.patch_size)
        return crop_bilinear(frames, focus.location, self.config.patch_size)

    def boxes(self, focus: Focus) -> torch.Tensor:
        """(N, 4) normalised (x0, y0, x1, y1) of the focused patches."""
        return patch_boxes(focus.location, self.config.frame_size, self.config.patch_size,
                           focus.origins)

    def local_features(self, patches: torch.Tensor) -> torch.Tensor:
        """f_L on patches (N, 3, P, P) -> pooled (N, D_L)."""
        return self.local(patches)

    def classifier_step(self, glance_pooled: torch.Tensor, local_pooled: torch.Tensor,
                        hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f_C on concat(f_G, f_L) pooled features -> (logits (N, K), new hidden)."""
        features = torch.cat([glance_pooled, local_pooled.to(glance_pooled.dtype)], dim=1)
        return self.classifier(features, hidden)

    def evaluate_actions(self, glance_maps: torch.Tensor, cells: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """V1 / PPO: re-run the policy over stored glance maps (B, T, C, h, w) and return
        (log_probs, values, entropy), each (B, T), of the stored ``cells`` (B, T)."""
        if self.config.policy != "v1":
            raise ValueError("evaluate_actions is for the V1 (grid, PPO) policy")
        batch, steps = cells.shape
        hidden, _ = self.initial_state(batch, glance_maps.device)
        log_probs, values, entropy = [], [], []
        for t in range(steps):
            out = self.policy_step(glance_maps[:, t], hidden)
            hidden = out.hidden
            logp = F.log_softmax(out.logits.float(), dim=-1)
            log_probs.append(logp.gather(1, cells[:, t, None]).squeeze(1))
            entropy.append(-(logp.exp() * logp).sum(-1))
            values.append(out.value.float())
        return torch.stack(log_probs, 1), torch.stack(values, 1), torch.stack(entropy, 1)

    # ---- whole clips -------------------------------------------------------------

    def forward_clip(self, frames: torch.Tensor, patch_source: PatchSource = "policy",
                     sample: bool = False, random_baseline: bool = False,
                     generator: torch.Generator | None = None) -> ClipOutput:
        """Offline pass over clips (B, T, 3, H, W) of normalised full-resolution frames.

        Causal: step t sees frames 0..t only, so the per-step logits equal what
        OnlineAdaFocus.step returns frame by frame. f_G, the crop and f_L run batched
        over all B*T frames; only the small recurrent parts loop over T.
        """
        cfg = self.config
        batch, steps = frames.shape[:2]
        if tuple(frames.shape[2:]) != (3, *cfg.frame_size):
            raise ValueError(f"frames must be (B, T, 3, {cfg.frame_size[0]}, {cfg.frame_size[1]}),"
                             f" got {tuple(frames.shape)}")
        flat = frames.flatten(0, 1)
        fmaps, g_pooled = self.glance_features(flat)
        fmaps = fmaps.unflatten(0, (batch, steps))
        g_pooled = g_pooled.unflatten(0, (batch, steps))

        ppo: dict[str, torch.Tensor] = {}
        if patch_source == "policy":
            focuses, policy_logits, values = [], [], []
            hidden, _ = self.initial_state(batch, frames.device)
            for t in range(steps):
                out = self.policy_step(fmaps[:, t], hidden)
                hidden = out.hidden
                focuses.append(self.locate(batch, "policy", out, sample, generator))
                if out.logits is not None:
                    policy_logits.append(out.logits.float())
                    values.append(out.value.float())
            focus = _stack_focus(focuses)
            if policy_logits:
                logits_bt = torch.stack(policy_logits, 1)
                logp = F.log_softmax(logits_bt, dim=-1)
                ppo = {"policy_logits": logits_bt, "values": torch.stack(values, 1),
                       "log_probs": logp.gather(2, focus.cells[..., None]).squeeze(2),
                       "entropy": -(logp.exp() * logp).sum(-1)}
        else:
            focus = _unflatten_focus(
                self.locate(batch * steps, patch_source, generator=generator,
                            device=frames.device), batch, steps)

        l_pooled = self.local_features(self.crop(flat, _flatten_focus(focus)))
        l_pooled = l_pooled.unflatten(0, (batch, steps))
        random_pooled = None
        if random_baseline:
            rand = self.locate(batch * steps, "random", generator=generator, device=frames.device)
            random_pooled = self.local_features(self.crop(flat, rand)).unflatten(0, (batch, steps))

        _, hidden = self.initial_state(batch, frames.device)
        logits, random_logits = [], []
        for t in range(steps):
            if random_pooled is not None:
                random_logits.append(self.classifier_step(g_pooled[:, t], random_pooled[:, t],
                                                          hidden)[0])
            step_logits, hidden = self.classifier_step(g_pooled[:, t], l_pooled[:, t], hidden)
            logits.append(step_logits)

        flat_focus = _flatten_focus(focus)
        return ClipOutput(
            logits=torch.stack(logits, 1),
            glance_logits=self.glance_head(g_pooled),
            local_logits=self.local_head(l_pooled),
            locations=focus.location,
            boxes=self.boxes(flat_focus).unflatten(0, (batch, steps)),
            glance_maps=fmaps.detach(),
            cells=focus.cells,
            random_logits=torch.stack(random_logits, 1) if random_logits else None,
            **ppo,
        )

    forward = forward_clip

    @staticmethod
    def ppo_rewards(out: ClipOutput, labels: torch.Tensor) -> torch.Tensor:
        """V1 reward r_t = p_t(y | chosen patch) - p_t(y | random patch), (B, T).

        ``labels`` is (B,) for one label per clip or (B, T) per frame; ``out`` must
        come from ``forward_clip(..., random_baseline=True)``.
        """
        if out.random_logits is None:
            raise ValueError("ppo_rewards needs forward_clip(..., random_baseline=True)")
        if labels.dim() == 1:
            labels = labels[:, None].expand(-1, out.logits.shape[1])
        chosen = out.logits.float().softmax(-1).gather(2, labels[..., None]).squeeze(2)
        rand = out.random_logits.float().softmax(-1).gather(2, labels[..., None]).squeeze(2)
        return (chosen - rand).detach()


def _stack_focus(focuses: list[Focus]) -> Focus:
    """Per-step Focus (B, ...) list -> one Focus (B, T, ...)."""
    first = focuses[0]
    return Focus(
        location=torch.stack([f.location for f in focuses], 1),
        cells=None if first.cells is None else torch.stack([f.cells for f in focuses], 1),
        origins=None if first.origins is None else torch.stack([f.origins for f in focuses], 1),
    )


def _flatten_focus(focus: Focus) -> Focus:
    def flat(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.flatten(0, 1)

    return Focus(flat(focus.location), flat(focus.cells), flat(focus.origins))


def _unflatten_focus(focus: Focus, batch: int, steps: int) -> Focus:
    def unflat(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.unflatten(0, (batch, steps))

    return Focus(unflat(focus.location), unflat(focus.cells), unflat(focus.origins))
