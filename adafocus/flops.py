"""Per-component compute (adafocus.interface.Costs) of an AdaFocus config or a
baseline, counted once.

Convention: "GFLOPs" here means 10^9 multiply-accumulates (MACs), the convention of
the AdaFocus papers and of torchvision's model tables (MobileNetV2 at 224: 0.30,
ResNet-50 at 224: 4.09). torch.utils.flop_counter.FlopCounterMode counts 2 FLOPs
per MAC, so its totals are halved. Counted ops: convolutions and matrix products
(everything that matters); resizing, the crop, BN, activations and pooling are not.

Counting runs on the meta device, so it costs no memory or time beyond tracing the
shapes, and depends only on the config, never on weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from adafocus.config import AdaFocusConfig
from adafocus.interface import Costs

if TYPE_CHECKING:
    from adafocus.models.baselines import RecurrentBaseline


def count_gflops(fn, *inputs: torch.Tensor) -> float:
    """GMACs of one call ``fn(*inputs)`` as counted by FlopCounterMode (FLOPs / 2 / 1e9)."""
    # here, not at the top: torch.utils.flop_counter imports triton (~80 MB of RSS) and a
    # serving process that trusts a checkpoint's stored costs never counts
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*inputs)
    return counter.get_total_flops() / 2e9


def component_gflops(config: AdaFocusConfig) -> Costs:
    """GFLOPs (GMACs) per frame of each part of the model described by ``config``.

    - ``glance``: f_G at ``glance_size``; ``policy``: one policy step; ``local``: f_L on
      one ``patch_size`` patch; ``classifier``: one f_C step.
    - ``full_step``: glance + policy + local + classifier, one fully processed frame.
    - ``local_full``: f_L on the whole frame at ``frame_size``: the full-frame
      high-capacity network that AdaFocus is compared against (``gflops_full``).
    - ``skip_signal``: the pixel-change signal of adaptive skipping, one add per input
      byte (block means of the uint8 frame); counted analytically, always tiny.
    """
    from adafocus.models import AdaFocus  # local import: models import nothing from here

    with torch.device("meta"):
        model = AdaFocus(config).eval()
        height, width = config.frame_size
        glance_in = torch.zeros(1, 3, *config.glance_size)
        fmap, pooled = model.glance(glance_in)
        policy_hidden, classifier_hidden = model.initial_state(1, "meta")
        patch = torch.zeros(1, 3, config.patch_size, config.patch_size)
        local_pooled = model.local(patch)
        table = {
            "skip_signal": height * width * 3 / 1e9,
            "glance": count_gflops(model.glance, glance_in),
            "policy": count_gflops(model.policy, fmap, policy_hidden),
            "local": count_gflops(model.local, patch),
            "classifier": count_gflops(model.classifier_step, pooled, local_pooled,
                                       classifier_hidden),
            "local_full": count_gflops(model.local, torch.zeros(1, 3, height, width)),
        }
    table["full_step"] = table["glance"] + table["policy"] + table["local"] + table["classifier"]
    return Costs(**table)


def baseline_costs(model: RecurrentBaseline) -> Costs:
    """The costs of a baseline (adafocus.models.baselines) in the same record.

    Its backbone counts as ``glance`` (what every frame that is not skipped runs)
    and one classifier step completes a full step; ``local_full`` stays f_L on the
    whole frame, the reference every result is compared with.
    """
    config = model.config
    reference = component_gflops(config)
    with torch.device("meta"):
        meta = type(model)(config)
        frame = torch.zeros(1, 3, *config.frame_size)
        pooled = meta.features(frame)
        hidden = meta.initial_state(1, "meta")
        backbone = count_gflops(meta.features, frame)
        classifier = count_gflops(meta.classifier_step, pooled, hidden)
    return Costs(skip_signal=reference.skip_signal, glance=backbone, policy=0.0, local=0.0,
                 classifier=classifier, full_step=backbone + classifier,
                 local_full=reference.local_full)
