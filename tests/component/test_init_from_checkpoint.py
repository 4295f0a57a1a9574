"""`train --init CKPT` fine-tunes from a compatible checkpoint: builtin:digits onto a
folder of other classes starts from every one of its tensors but the class heads
(re-initialised), keeps the heads when the classes are the same, and a checkpoint of
other shapes is refused naming its tensors, never half-loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from adafocus.checkpoint import load_checkpoint
from adafocus.train.start import HEADS
from tests.support.folders import digits_folder, folder_run, pattern_folder

DIGITS_MODEL = {"overrides": {"local_strides": [2, 2, 2, 2],  # builtin:digits's shapes
                              "local_channels": [48, 96, 128, 160]}}


def all_digits_folder(out: Path) -> Path:
    """Two 128x128 digits clips relabelled so that all ten digits occur: the data's
    classes are then exactly builtin:digits's (what the labels say of the pixels does
    not matter to a run of zero steps)."""
    digits_folder(out, clips=2, seconds=1.0, size=(128, 128))
    rows = [f"clip-{d // 5:03d}.mp4,{d % 5 * 0.2:g},{d % 5 * 0.2 + 0.2:g},{d}" for d in range(10)]
    (out / "labels.csv").write_text("file,start_s,end_s,label\n" + "\n".join(rows) + "\n")
    return out


def train_cli(config: dict, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    path = workdir / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "stream.cli", "train", str(path),
                           "--no-progress", "--threads", "1", *args],
                          capture_output=True, text=True, timeout=300)


def _split(state: dict) -> tuple[dict, dict]:
    heads = {k: v for k, v in state.items() if k.startswith(HEADS)}
    return {k: v for k, v in state.items() if k not in heads}, heads


@pytest.mark.parametrize(("make", "classes", "heads_kept"), [
    (pattern_folder, ["bottom-left", "bottom-right", "top-left", "top-right"], False),
    (all_digits_folder, [str(d) for d in range(10)], True),
])
def test_init_starts_from_every_tensor_and_reinitialises_heads_for_new_classes(
        make, classes, heads_kept, tmp_path):
    folder = make(tmp_path / "videos")
    run = folder_run(folder, tmp_path / "m.pt", steps=0, model=DIGITS_MODEL)  # no training
    run["ship"] = "v1"
    proc = train_cli(run, tmp_path, "--init", "builtin:digits")
    assert proc.returncode == 0, proc.stderr
    trained, digits = load_checkpoint(tmp_path / "m.pt"), load_checkpoint("builtin:digits")
    assert trained.config.policy == "v1" == digits.config.policy  # whole V1 (policy too)
    assert trained.class_names == classes
    body, heads = _split(trained.state_dict)
    digits_body, digits_heads = _split(digits.state_dict)
    assert body.keys() == digits_body.keys()
    assert all(torch.equal(body[k], digits_body[k]) for k in body)
    same = all(v.shape == digits_heads[k].shape and torch.equal(v, digits_heads[k])
               for k, v in heads.items())
    assert same == heads_kept
    start = trained.training["start"]
    assert start["heads"] == ("kept" if heads_kept else "re-initialised (other classes)")


def test_a_checkpoint_of_other_shapes_is_refused_naming_its_tensors(tmp_path):
    folder = digits_folder(tmp_path / "videos")  # 64x48: another glance map than 128x128's
    proc = train_cli(folder_run(folder, tmp_path / "m.pt", steps=0, model=DIGITS_MODEL),
                     tmp_path, "--init", "builtin:digits")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "does not fit this run's models" in proc.stderr
    assert "policy.embed.0.weight" in proc.stderr and "frames (128, 128)" in proc.stderr
    assert not (tmp_path / "m.pt").exists()


def test_init_names_a_missing_checkpoint_at_its_key(tmp_path):
    folder = digits_folder(tmp_path / "videos", clips=2, seconds=1.0)
    proc = train_cli(folder_run(folder, tmp_path / "m.pt"), tmp_path, "--init",
                     str(tmp_path / "nope.pt"))
    assert proc.returncode == 2
    assert f"model.init: no checkpoint file at {tmp_path / 'nope.pt'}" in proc.stderr
