"""Backbone weights from local files in torchvision's state-dict format.

Real users start the `paper` preset from ImageNet weights, as the papers do; this
project downloads nothing, so the user brings the files: what
``torch.save(torchvision.models.mobilenet_v2(weights="DEFAULT").state_dict(), path)``
(or ``resnet50``) writes, which is also what torchvision's own download cache
holds. Our glance network keeps MobileNetV2's ``features`` and our local network
is ResNet-50 without its ``fc``, so a file maps onto them by dropping the ImageNet
classifier; every other tensor must be there with its torchvision shape.
Frames are normalised with the ImageNet statistics those weights expect
(adafocus.checkpoint.IMAGENET_NORMALIZATION, what training uses).
"""

from __future__ import annotations

import os

import torch

from adafocus.models.glance import GlanceNet
from adafocus.models.local import LocalNet


class WeightsError(ValueError):
    """A backbone file that cannot be used; the message names the file and the problem."""


def load_torchvision_backbone(net: GlanceNet | LocalNet, path: str | os.PathLike) -> None:
    """Load a torchvision MobileNetV2 (into a ``mobilenet_v2`` GlanceNet) or ResNet-50
    (into a ``resnet50`` LocalNet) state-dict file; WeightsError for a file that is
    not one, or not the one this network needs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise WeightsError(f"{path}: not a torch state-dict file ({type(exc).__name__})"
                           ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise WeightsError(f"{path}: expected a torchvision state dict (name -> tensor)")
    if isinstance(net, GlanceNet):
        want, prefix, dropped = "MobileNetV2", "features.", "classifier."
    else:
        want, prefix, dropped = "ResNet-50", "", "fc."
    mapped = {k[len(prefix):]: v for k, v in state.items()
              if k.startswith(prefix) and not k.startswith(dropped)}
    own = net.features.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    wrong = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what} {len(keys)} (e.g. {keys[0]})" for what, keys in
                           (("missing", missing), ("unexpected", unexpected),
                            ("wrong shape", wrong)) if keys)
        raise WeightsError(f"{path}: not torchvision {want} weights ({detail})")
    net.features.load_state_dict(mapped)


__all__ = ["WeightsError", "load_torchvision_backbone"]
