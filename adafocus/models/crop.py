"""Batched patch crops: every frame of a batch at its own position, in one op.

Positions use one convention everywhere: a location (x, y) in [0, 1]^2 puts the
patch's top-left corner at (x * (W - P), y * (H - P)) pixels, so any location keeps
the whole patch inside the frame, whatever the aspect ratio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def grid_origins(cells: torch.Tensor, grid: tuple[int, int], frame_size: tuple[int, int],
                 patch: int) -> torch.Tensor:
    """Integer top-left corners (N, 2) as (x0, y0) for row-major grid cell indices.

    Cells spread evenly from the top-left to the bottom-right position, computed in
    integer arithmetic (floor) so the same cell always gives the same pixels.
    """
    rows, cols = grid
    span_y, span_x = frame_size[0] - patch, frame_size[1] - patch
    row, col = cells // cols, cells % cols
    x0 = col * span_x // (cols - 1) if cols > 1 else torch.full_like(col, span_x // 2)
    y0 = row * span_y // (rows - 1) if rows > 1 else torch.full_like(row, span_y // 2)
    return torch.stack([x0, y0], dim=1)


def crop_exact(frames: torch.Tensor, origins: torch.Tensor, patch: int) -> torch.Tensor:
    """frames (N, C, H, W), integer origins (N, 2) (x0, y0) -> patches (N, C, P, P),
    each exactly frames[n, :, y0:y0+P, x0:x0+P] (one gather for the batch)."""
    steps = torch.arange(patch, device=frames.device)
    rows = origins[:, 1, None] + steps
    cols = origins[:, 0, None] + steps
    batch = torch.arange(frames.shape[0], device=frames.device)[:, None, None]
    # advanced indices around a slice: the result is (N, P, P, C)
    return frames[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def crop_bilinear(frames: torch.Tensor, location: torch.Tensor, patch: int) -> torch.Tensor:
    """Differentiable crop (AdaFocusV2): samples a PxP patch at a continuous location
    (N, 2) with bilinear interpolation; gradients flow to ``location``. At an integer
    origin it reproduces the exact slice (samples land on pixel centres)."""
    height, width = frames.shape[-2:]
    location = location.float()  # pixel coordinates need fp32 even under autocast
    steps = torch.arange(patch, device=frames.device, dtype=torch.float32) + 0.5
    xs = location[:, 0:1] * (width - patch) + steps  # pixel coordinates of sample centres
    ys = location[:, 1:2] * (height - patch) + steps
    gx = (2 * xs / width - 1)[:, None, :].expand(-1, patch, -1)
    gy = (2 * ys / height - 1)[:, :, None].expand(-1, -1, patch)
    grid = torch.stack([gx, gy], dim=-1).to(frames.dtype)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def patch_boxes(location: torch.Tensor, frame_size: tuple[int, int], patch: int,
                origins: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 4) boxes (x0, y0, x1, y1) normalised to 0..1 of the frame.

    Only Python scalars enter the arithmetic (no tensor made from host data, which on
    CUDA would make the host wait for the GPU)."""
    height, width = frame_size
    if origins is None:
        x0 = location[:, 0].float() * (width - patch) / width
        y0 = location[:, 1].float() * (height - patch) / height
    else:
        x0 = origins[:, 0].float() / width
        y0 = origins[:, 1].float() / height
    return torch.stack([x0, y0, x0 + patch / width, y0 + patch / height], dim=1)
