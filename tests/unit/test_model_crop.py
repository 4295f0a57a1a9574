"""The batched crop is exactly the frame slice (V1) and differentiable (V2)."""

import pytest
import torch

from adafocus import AdaFocus, preset
from adafocus.models import crop_bilinear, crop_exact, grid_origins


def test_exact_crop_of_a_batch_equals_each_frame_slice_on_non_square_frames():
    frames = torch.randn(5, 3, 60, 100)
    origins = torch.tensor([[0, 0], [76, 36], [13, 7], [50, 20], [76, 0]])
    patches = crop_exact(frames, origins, 24)
    assert patches.shape == (5, 3, 24, 24)
    for n, (x0, y0) in enumerate(origins.tolist()):
        assert torch.equal(patches[n], frames[n, :, y0:y0 + 24, x0:x0 + 24])


def test_bilinear_crop_matches_the_slice_at_integer_positions_and_has_location_gradients():
    frames = torch.randn(3, 3, 60, 100)
    patch = 24
    origins = torch.tensor([[0.0, 0.0], [76.0, 36.0], [31.0, 11.0]])
    location = (origins / torch.tensor([100 - patch, 60 - patch])).requires_grad_(True)
    patches = crop_bilinear(frames, location, patch)
    for n, (x0, y0) in enumerate(origins.long().tolist()):
        torch.testing.assert_close(patches[n], frames[n, :, y0:y0 + patch, x0:x0 + patch],
                                   atol=1e-4, rtol=1e-4)
    # a fractional location interpolates, and the loss reaches the location
    inner = torch.tensor([[0.3, 0.6], [0.55, 0.25], [0.71, 0.42]], requires_grad=True)
    crop_bilinear(frames, inner, patch).square().sum().backward()
    assert inner.grad is not None and torch.isfinite(inner.grad).all()
    assert (inner.grad.abs() > 0).all()


def test_grid_cells_span_the_frame_from_corner_to_corner():
    origins = grid_origins(torch.arange(12), (3, 4), (60, 100), 24)
    assert origins[0].tolist() == [0, 0]
    assert origins[3].tolist() == [76, 0]
    assert origins[11].tolist() == [76, 36]
    assert origins[:, 0].unique().numel() == 4 and origins[:, 1].unique().numel() == 3


def test_model_v1_crop_uses_exact_slices_at_the_chosen_grid_cell():
    cfg = preset("tiny", frame_size=(96, 160), glance_size=(24, 40))
    model = AdaFocus(cfg).eval()
    frames = torch.randn(4, 3, 96, 160)
    focus = model.focus_from_cells(torch.tensor([0, 48, 24, 6]))
    patches = model.crop(frames, focus)
    for n, (x0, y0) in enumerate(focus.origins.tolist()):
        p = cfg.patch_size
        assert torch.equal(patches[n], frames[n, :, y0:y0 + p, x0:x0 + p])
    boxes = model.boxes(focus)
    assert boxes[1].tolist() == pytest.approx(
        [1 - cfg.patch_size / 160, 1 - cfg.patch_size / 96, 1.0, 1.0])
