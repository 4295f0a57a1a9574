"""Frames from the host to the model's device, as uint8 (4x fewer bytes than float).

From CPU to CUDA the rows go through one persistent pinned buffer (grown to the
next power of two when a batch needs more) and one non-blocking copy: pinning a
fresh tensor every step (pin_memory) costs milliseconds. The buffer is refilled
only once the previous upload from it has finished (a CUDA event; by then it has
normally long finished, because each step copies its results back). Anywhere
else a frame tensor simply moves to the device.
"""

from __future__ import annotations

import torch


class Uploader:
    """`uploader(frames)`: uint8 frames on the device (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._cuda = device.type == "cuda"
        self._staging: torch.Tensor | None = None  # pinned host buffer (CUDA)
        # recorded after each upload from the buffer; waited on before refilling it
        self._staging_free = torch.cuda.Event() if self._cuda else None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not (self._cuda and frames.device.type == "cpu"):
            return frames.to(self._device)
        count = frames.shape[0]
        if (self._staging is None or self._staging.shape[0] < count
                or self._staging.shape[1:] != frames.shape[1:]):
            # a replaced buffer stays reserved until its pending copy is done (torch's
            # pinned-memory allocator records the copy), so only refills must wait
            rows = 1 << max(count - 1, 0).bit_length()
            self._staging = torch.empty((rows, *frames.shape[1:]), dtype=torch.uint8,
                                        pin_memory=True)
        else:
            self._staging_free.synchronize()
        staged = self._staging[:count]
        staged.copy_(frames)
        uploaded = staged.to(self._device, non_blocking=True)
        self._staging_free.record(torch.cuda.current_stream(self._device))
        return uploaded
