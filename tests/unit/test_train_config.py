"""A bad train config fails up front, naming the key and the problem (library and CLI)."""

import subprocess
import sys

import pytest

from adafocus.train import TrainConfigError, load_train_config, parse_train_config
from adafocus.train.config import model_config


@pytest.mark.parametrize(("raw", "message"), [
    ({"v1": {"ppo": {"clip": 2.0}}}, "v1.ppo.clip: must be < 1.0, got 2.0"),
    ({"data": {"batch_size": "16"}}, "data.batch_size: expected an integer, got str"),
    ({"data": {"sorce": "moving_digits"}}, "data.sorce: unknown key"),
    ({"data": {"source": "folder"}}, "data.root: is required when data.source is folder"),
    ({"calibration": {"budgets": [0.3, 1.5]}}, "calibration.budgets[1]: must be <= 1.0, got 1.5"),
    ({"model": {"overrides": {"patch_sise": 32}}}, "model.overrides.patch_sise: unknown key"),
    ({"model": {"overrides": {"patch_size": 4096}}},
     "model.overrides.patch_size: 4096 does not fit"),
    ({"ship": "v3"}, "ship: expected 'best', 'v1' or 'v2', got 'v3'"),
    ({"v2": {"train": {"steps": -1}}}, "v2.train.steps: must be >= 0, got -1"),
    ({"data": {"source": "folder", "root": "x"}}, "data.root: no folder at x"),
    ({"data": {"val_root": "x"}}, "data.val_root: is for data.source folder"),
    ({"model": {"glance_weights": "mobilenet.pth"}}, "model.glance_weights: no file at"),
    ({"model": {"init": "builtin:nope"}}, "model.init: no builtin checkpoint 'nope'"),
])
def test_bad_values_are_rejected_with_the_key_path(raw, message):
    with pytest.raises(TrainConfigError) as err:
        parse_train_config(raw)
    assert message in str(err.value)


def test_a_config_with_three_mistakes_reports_all_three_at_their_keys():
    with pytest.raises(TrainConfigError) as err:
        parse_train_config({"data": {"batch_size": 0, "gap_mode": "sometimes"},
                            "v2": {"train": {"lr": "fast"}}})
    assert str(err.value).split("; ") == [
        "data.gap_mode: expected 'fixed' or 'random', got 'sometimes'",
        "data.batch_size: must be >= 1, got 0",
        "v2.train.lr: expected a number, got str",
    ]


def test_relations_between_keys_are_reported_together_at_their_keys(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label\n")
    (tmp_path / "resnet50.pth").write_bytes(b"")
    with pytest.raises(TrainConfigError) as err:
        parse_train_config({"data": {"source": "folder", "root": str(tmp_path),
                                     "val_fraction": 0.0},
                            "model": {"overrides": {"patch_size": 4096},
                                      "local_weights": str(tmp_path / "resnet50.pth")}})
    assert str(err.value).split("; ") == [
        "model.overrides.patch_size: 4096 does not fit in frame (128, 128)",
        "data.val_fraction: must be > 0 without data.val_root: validating on training clips "
        "would pick the model that memorised them best",
    ]
    with pytest.raises(TrainConfigError) as err:
        parse_train_config({"model": {"local_weights": str(tmp_path / "resnet50.pth")}})
    assert str(err.value) == ("model.local_weights: torchvision weights need local_arch "
                              "resnet50 (the paper preset), not tiny_cnn")


def test_defaults_are_frozen_and_a_bare_section_takes_them():
    cfg = parse_train_config({"pretrain": None, "v1": {"ppo": None}})
    assert cfg == parse_train_config({})
    assert cfg.v1.finetune.lr == 3e-4 and cfg.calibration.budgets == (0.2, 0.3, 0.5)
    with pytest.raises(ValueError, match="frozen"):
        cfg.v1.ppo.clip = 0.5


def test_shipped_config_is_valid_and_overrides_become_model_fields():
    cfg = load_train_config("adafocus/configs/digits-tiny.yaml")
    v2 = model_config(cfg, "v2")
    assert v2.policy == "v2" and v2.local_strides == (2, 2, 2, 2)


def test_unreadable_and_malformed_files_name_the_file(tmp_path):
    with pytest.raises(TrainConfigError, match="cannot read train config"):
        load_train_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(TrainConfigError, match=r"bad\.yaml: not valid YAML"):
        load_train_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(TrainConfigError, match="config: expected a mapping"):
        load_train_config(top)


def test_cli_train_reports_a_bad_config_without_a_traceback(tmp_path):
    bad = tmp_path / "train.yaml"
    bad.write_text("v1:\n  ppo:\n    gamma: 1.5\n")
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "train", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "v1.ppo.gamma: must be <= 1.0, got 1.5" in proc.stderr
    assert "Traceback" not in proc.stderr
