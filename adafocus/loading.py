"""The one loader a server needs: a model file in, an :class:`OnlineModel` out.

Either kind of model file is served the same way, so the worker has no special
case: an AdaFocus checkpoint (adafocus.checkpoint) becomes an ``OnlineAdaFocus``
with its calibrated skipping, a baseline file (adafocus.baselines) an
``OnlineBaseline`` that runs every frame in full.

Nothing here (or below it) imports ``adafocus.train``: a serving process loads the
networks and their runtime, never PPO, the data loaders or tqdm.
"""

from __future__ import annotations

import os
from typing import Any

from adafocus.baselines import OnlineBaseline, is_baseline_file, load_baseline
from adafocus.interface import OnlineModel, check_skip_mode
from adafocus.online import OnlineAdaFocus
from adafocus.runtime import resolve_device


def load_online(spec: str | os.PathLike, *, device: str = "auto", skip_mode: str | None = None,
                budget: float | None = None, top_k: int = 5,
                recount_costs: bool = True, **runtime: Any) -> OnlineModel:
    """The model a server runs, from a path or ``builtin:NAME``.

    An AdaFocus checkpoint loads as ``OnlineAdaFocus.from_checkpoint`` does (same
    arguments); a baseline file runs every frame in full, so its ``skip_mode`` must
    be None or "off". Raises CheckpointError for a file that is neither, ValueError
    for a bad device or skip setting. ``recount_costs=False`` trusts a checkpoint's
    stored GFLOPs (see adafocus.checkpoint.load_checkpoint); a baseline file stores
    none, so its costs are always counted. ``runtime``: the online runtime's options
    (adafocus.runtime.OnlineRunner: amp, cuda_graphs, pad_batches).
    """
    if not is_baseline_file(spec):
        return OnlineAdaFocus.from_checkpoint(spec, device=device, skip_mode=skip_mode,
                                              budget=budget, top_k=top_k,
                                              recount_costs=recount_costs, **runtime)
    resolve_device(device)  # fail on a bad device before reading the file
    check_skip_mode(skip_mode)
    if skip_mode not in (None, "off"):
        raise ValueError(f"{spec}: a full-frame baseline runs every frame; adaptive skipping "
                         f"({skip_mode!r}) needs an AdaFocus checkpoint (set skip mode 'off')")
    model, meta = load_baseline(spec)
    return OnlineBaseline(model, meta["class_names"], meta["normalization"], device=device,
                          top_k=top_k, **runtime)


__all__ = ["load_online"]
