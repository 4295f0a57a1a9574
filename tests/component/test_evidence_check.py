"""The label-only box diagnostic (`python -m adafocus.train.evidence_check`) reads a
training run's state and an exported moving-digits folder and compares every frame's
evidence box with the digit the scene drew there: a box placed at the digit scores 0 px,
the same box moved away scores the distance it was moved."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from adafocus.train import parse_train_config, train
from adafocus.train.evidence_check import centre_error
from adafocus.train.runner import state_path
from tests.support.folders import SMALL_MODEL, digits_folder, folder_run


def test_centre_error_is_the_largest_axis_offset_of_the_centres():
    truth = np.array([[10, 10, 30, 30]], np.float32)
    assert centre_error(truth, truth).tolist() == [0.0]
    moved = truth + np.array([[3, -7, 3, -7]], np.float32)
    assert centre_error(moved, truth).tolist() == [7.0]


@pytest.mark.parametrize("shifts", [1, 4])
def test_the_check_reports_every_frame_of_the_folder(tmp_path, shifts):
    torch.set_num_threads(1)
    folder = digits_folder(tmp_path / "clips", clips=3, seconds=1.0)
    raw = folder_run(folder, tmp_path / "m.pt", steps=1, model={"overrides": SMALL_MODEL})
    raw.update(frames={"steps": 2, "batch_size": 4},
               boxes={"source": "evidence", "evidence_shifts": shifts, "glance_steps": 1,
                      "batch_size": 2})
    cfg = parse_train_config(raw)
    train(cfg, progress=False, log=lambda _: None)
    proc = subprocess.run([sys.executable, "-m", "adafocus.train.evidence_check",
                           str(state_path(cfg, tmp_path / "m.pt")), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frames"] == 3 * 25
    assert 0 <= report["within_4px"] <= report["within_8px"] <= report["within_12px"] <= 1
