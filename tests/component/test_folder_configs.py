"""Train configs for a folder work as copied: the shipped folder configs are valid once
their folder exists, a copy of the digits config switched to a folder runs with its
box-only sections untouched (those stages are skipped, and said so), and a config
with several mistakes reports every one at its key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from adafocus.train import TrainConfigError, load_train_config, parse_train_config, train
from adafocus.train.config import model_config
from tests.support import ROOT
from tests.support.folders import digits_folder

CONFIGS = ROOT / "adafocus" / "configs"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("videos"))


@pytest.mark.parametrize("name", ["folder-tiny.yaml", "folder-paper.yaml"])
def test_shipped_folder_configs_need_only_their_folder(name, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped root, runs/digits-folder/train, is not there
    with pytest.raises(TrainConfigError) as err:
        load_train_config(CONFIGS / name)
    assert "data.root: no folder at runs/digits-folder/train" in str(err.value)
    raw = yaml.safe_load((CONFIGS / name).read_text())
    raw["data"]["root"] = str(folder)
    if "val_root" in raw["data"]:
        assert "data.val_root: no folder at runs/digits-folder/val" in str(err.value)
        raw["data"]["val_root"] = str(folder)
    cfg = parse_train_config(raw)
    assert cfg.data.source == "folder" and (cfg.data.val_root or cfg.data.val_fraction > 0)


def test_a_copied_digits_config_switched_to_a_folder_trains_skipping_box_stages(folder,
                                                                                 tmp_path):
    raw = yaml.safe_load((CONFIGS / "digits-tiny.yaml").read_text())
    assert raw["pretrain"]["steps"] and raw["boxes"]["steps"]  # kept as they are
    raw["data"].update(source="folder", root=str(folder), batch_size=2, seq_len=4)
    for section in (raw["baselines"]["glance"], raw["baselines"]["full"], *raw["v1"].values(),
                    raw["v2"]["train"]):
        section["steps"] = 1  # the copy's own steps, shortened for a test
    raw["calibration"].update(sequences=2, seq_len=8)
    raw["output"]["checkpoint"] = str(tmp_path / "copied.pt")
    lines: list[str] = []
    torch.set_num_threads(1)
    result = train(parse_train_config(raw), progress=False, log=lines.append)
    summary = torch.load(result.checkpoint, weights_only=True)["training"]
    skipped = ["pretrain.glance", "pretrain.local", "v1.boxes", "v2.boxes"]
    assert summary["skipped_stages"] == skipped and summary["boxes"] == "none"
    assert (f"skipping {', '.join(skipped)}: boxes.source truth needs object boxes and "
            "data.source folder has none (boxes.source evidence finds them from the labels: "
            "see adafocus/configs/folder-tiny.yaml)") in lines
    assert not any(name in summary["stages"] for name in skipped)
    assert any(line.startswith("[6/6] v2.train: 1 steps; run 83% (5/6 steps)") for line in lines)


def test_a_folder_config_with_three_mistakes_reports_all_three(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "mobilenet.pth").write_bytes(b"")
    raw = {"model": {"glance_weights": str(tmp_path / "mobilenet.pth")},  # tiny has no MobileNet
           "data": {"source": "folder", "root": str(folder),
                    "val_root": str(tmp_path / "empty"),  # no labels.csv there
                    "val_fraction": 1.5}}
    with pytest.raises(TrainConfigError) as err:
        parse_train_config(raw)
    assert str(err.value).split("; ") == [
        "model.glance_weights: torchvision weights need glance_arch mobilenet_v2 (the paper "
        "preset), not tiny_cnn",
        f"data.val_root: no labels.csv in {tmp_path / 'empty'} (see adafocus.data.video_folder "
        "for the layout)",
        "data.val_fraction: must be < 1.0, got 1.5",
    ]


def test_the_frame_size_follows_the_videos_unless_the_config_sets_it(folder):
    from adafocus.train.data import open_data

    base = {"data": {"source": "folder", "root": str(folder)}}
    native = open_data(parse_train_config(base))
    assert native.decided == {"num_classes": len(native.class_names), "frame_size": (48, 64),
                              "glance_size": (12, 16)}  # 64x48 clips; tiny's glance is 1/4
    chosen = parse_train_config({**base, "model": {"overrides": {"frame_size": [96, 96]}}})
    data = open_data(chosen)
    assert model_config(chosen, "v1", data.decided).frame_size == (96, 96)
    assert "letterboxed" in data.summary["geometry"]["frame_size"]
    with pytest.raises(TrainConfigError, match="model.overrides.num_classes: 10 but the data"):
        wrong = copy.deepcopy(base) | {"model": {"overrides": {"num_classes": 10}}}
        model_config(parse_train_config(wrong), "v1", open_data(parse_train_config(wrong)
                                                                ).decided)
