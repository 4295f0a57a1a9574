"""Fixed-shape sub-networks replayed as CUDA graphs, at bucketed batch sizes.

Why: on a GPU a small online step is bound by kernel launches and host work, not
by FLOPs. An H100 ran the `paper` AdaFocus step (MobileNetV2 glance, policy,
ResNet-50 on a patch) in 25 ms against 10 ms for ResNet-50 on the whole frame, at
any batch, with 2.4 ms of kernels: hundreds of launches from Python. A CUDA graph
replays all of a sub-network's kernels with one launch. A graph has fixed shapes,
so a batch of n rows is padded to its bucket (the next power of two) and the
output rows beyond n are dropped: rows are independent (eval mode, BatchNorm
folded), so padding changes nothing else.

`GraphRunner.run(name, fn, *inputs)` is the one call the online runtime makes for
each sub-network (the glance, the rest of a full step), on every device:

- CUDA: per (name, bucket, row shapes) a graph is captured on first use (after
  warm-up runs on a side stream) and replayed with the inputs copied into its
  static buffers. A capture that fails (an op that cannot be captured) logs once
  and that sub-network runs eagerly from then on; the service never stops for it.
- CPU: `fn` runs as it is (no launches to save), unless `pad` is set, which pads
  to the bucket exactly as on CUDA: how tests check the padding on a CPU.

Inputs and outputs are tuples of tensors (batch first) or None; outputs are views
of the graph's static buffers, valid until the same graph replays again (the
runtime copies what it keeps within the step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)
WARMUP_RUNS = 3


def bucket(rows: int) -> int:
    """The padded batch size: the next power of two."""
    return 1 << max(rows - 1, 0).bit_length()


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor | None, ...]
    outputs: Any


class GraphRunner:
    """Runs sub-networks as CUDA graphs on CUDA, directly elsewhere (see above)."""

    def __init__(self, device: torch.device, enabled: bool, pad: bool = False) -> None:
        self._cuda = enabled and device.type == "cuda"
        self._pad = pad or self._cuda
        self._graphs: dict[tuple, _Graph] = {}
        self._eager: set[str] = set()  # sub-networks whose capture failed

    def run(self, name: str, fn: Callable[..., Any], *inputs: torch.Tensor | None) -> Any:
        rows = next(t.shape[0] for t in inputs if t is not None)
        if not self._pad or name in self._eager:
            return fn(*inputs)
        size = bucket(rows)
        if not self._cuda:
            return _take(fn(*(_padded(t, size) for t in inputs)), rows)
        key = (name, size, *((None if t is None else (tuple(t.shape[1:]), t.dtype))
                             for t in inputs))
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._graphs[key] = self._capture(fn, inputs, size)
            except RuntimeError as exc:  # an op that cannot be captured, out of memory
                log.warning("CUDA graph capture of %s failed (%s); running it eagerly",
                            name, str(exc).splitlines()[0])
                self._eager.add(name)
                return fn(*inputs)
        for static, given in zip(entry.inputs, inputs, strict=True):
            if static is not None:
                static[:rows].copy_(given)
        entry.graph.replay()
        return _take(entry.outputs, rows)

    @staticmethod
    def _capture(fn: Callable[..., Any], inputs: tuple, size: int) -> _Graph:
        static = tuple(_padded(t, size) for t in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = fn(*static)
        return _Graph(graph, static, outputs)


def _padded(tensor: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """`tensor` with zero rows appended up to `size` rows (a new tensor)."""
    if tensor is None:
        return None
    out = tensor.new_zeros((size, *tensor.shape[1:]))
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)  # the layout the convs want
    out[:tensor.shape[0]].copy_(tensor)
    return out


def _take(outputs: Any, rows: int) -> Any:
    """The first `rows` rows of every tensor in a (nested) tuple of outputs."""
    if outputs is None:
        return None
    if isinstance(outputs, torch.Tensor):
        return outputs[:rows]
    return tuple(_take(o, rows) for o in outputs)
