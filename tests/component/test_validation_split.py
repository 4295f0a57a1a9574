"""A real validation split for a folder: whole clips held out (never frames of a
training clip), drawn from the seed, or a validation folder of its own; model
selection and skip calibration read only those clips, and the checkpoint names them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adafocus.data.video_folder import DatasetError, VideoFolder, split_by_clip
from adafocus.train import parse_train_config, train
from adafocus.train.data import open_data
from tests.support.folders import digits_folder, folder_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("videos"), clips=10, seconds=1.0)


def _names(part: VideoFolder) -> set[str]:
    return {v.path.name for v in part.videos}


def test_every_clip_lands_on_exactly_one_side(folder):
    whole = VideoFolder(folder)
    train_part, val_part = split_by_clip(whole, 0.3, seed=0)
    assert not _names(train_part) & _names(val_part)
    assert _names(train_part) | _names(val_part) == _names(whole)
    assert 2 <= len(val_part) <= 4 and val_part.class_names == whole.class_names
    again = split_by_clip(whole, 0.3, seed=0)[1]
    assert _names(again) == _names(val_part)  # a resumed run holds out the same clips
    others = {frozenset(_names(split_by_clip(whole, 0.3, seed=s)[1])) for s in range(1, 6)}
    assert len(others) > 1  # and the seed chooses them


def test_held_out_labels_are_also_trained_on_when_the_label_has_clips_to_spare(folder):
    whole = VideoFolder(folder)
    train_part, val_part = split_by_clip(whole, 0.5, seed=3)
    train_labels = {train_part.main_label(k) for k in range(len(train_part))}
    assert {val_part.main_label(k) for k in range(len(val_part))} <= train_labels


def test_a_single_clip_cannot_be_split(folder, tmp_path):
    (tmp_path / "labels.csv").write_text(f"file,label\n{folder / 'clip-000.mp4'},x\n")
    with pytest.raises(DatasetError, match="needs at least 2 clips"):
        split_by_clip(VideoFolder(tmp_path), 0.2, seed=0)


def test_training_validates_on_the_held_out_clips_only(folder, tmp_path):
    cfg = parse_train_config(folder_run(folder, tmp_path / "m.pt", steps=1, val_fraction=0.3))
    data = open_data(cfg)
    held = _names(data.val.folder)
    assert held == set(data.validation["clips"]) and not held & _names(data.train.folder)
    rng = np.random.default_rng(0)
    for _ in range(8):  # the calibration's change sequences come from held-out clips too
        _, labels = data.val.sample(rng, np.arange(0, 16, 2), change=True)
        assert (labels >= 0).any()
    torch.set_num_threads(1)
    result = train(cfg, progress=False, log=lambda _: None)
    summary = torch.load(result.checkpoint, weights_only=True)["training"]
    assert summary["validation"] == {"kind": "held out by clip", "fraction": 0.3,
                                     "clips": sorted(held)}
    assert summary["data"]["train_clips"] == 10 - len(held)


def test_a_validation_folder_replaces_the_split(folder, tmp_path_factory, tmp_path):
    val_root = digits_folder(tmp_path_factory.mktemp("val"), clips=2, seconds=1.0, split="val")
    cfg = parse_train_config(folder_run(folder, tmp_path / "m.pt", val_root=str(val_root)))
    data = open_data(cfg)
    assert len(data.train.folder) == 10 and data.val.folder.root == val_root
    assert data.validation == {"kind": "folder", "root": str(val_root), "clips": 2}
