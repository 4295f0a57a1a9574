"""A run interrupted before this version added train-config keys resumes after the
upgrade: the saved config is read with the new keys at their defaults, so only a
real change of the config refuses the saved state."""

from __future__ import annotations

import pytest
import torch

from adafocus.train import ResumeError, parse_train_config, train
from adafocus.train.runner import state_path
from tests.support.training import TINY_RUN

ADDED = {"model": ("init", "glance_weights", "local_weights"),
         "data": ("val_root", "val_fraction", "augment", "cache_mb"),
         "boxes": ("source", "evidence_shifts", "box_size"), "v1": ("start", "local_aux")}


def test_a_state_saved_without_the_new_keys_still_resumes(tmp_path):
    torch.set_num_threads(1)
    cfg = parse_train_config(TINY_RUN)
    out = tmp_path / "m.pt"
    train(cfg, output=out, progress=False, log=lambda _: None)
    path = state_path(cfg, out)
    blob = torch.load(path, weights_only=True)
    for section, keys in ADDED.items():
        for key in keys:
            del blob["config"][section][key]  # as the previous versions saved it
    del blob["config"]["precision"], blob["config"]["frames"]
    torch.save(blob, path)
    lines: list[str] = []
    train(cfg, output=out, progress=False, log=lines.append)
    assert lines[0].startswith(f"resuming from {path}")
    blob["config"]["data"]["seq_len"] = 5  # a real difference is still refused
    torch.save(blob, path)
    with pytest.raises(ResumeError, match="different train config"):
        train(cfg, output=out, progress=False, log=lambda _: None)
