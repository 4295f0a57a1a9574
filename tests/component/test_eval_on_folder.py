"""`adafocus-stream eval CKPT --data DIR` on an exported folder: every method through
the online path, per-class accuracy and a confusion matrix, change delays at the
CSV's segment boundaries, the chance level in the report, and no target "met" for
a model at chance."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from adafocus import AdaFocus, FullFrame, preset, save_checkpoint
from adafocus.data.export import export_folder
from adafocus.data.moving_digits import CLASS_NAMES, MovingDigitsScene
from adafocus.data.video_folder import VideoFolder
from adafocus.evaluate import EvalSettings, check_targets, evaluate
from adafocus.train.comparisons import save_comparisons

SECONDS = 4.0


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """Test scenes 0..2 (the eval's own moving-digits streams) as H.264 clips, 128x128."""
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is several times faster
    out = tmp_path_factory.mktemp("digits-test")
    export_folder([MovingDigitsScene(k, split="test") for k in range(3)], out, SECONDS, 25.0,
                  log=lambda _: None)
    return out


def _majority(folder_root) -> tuple[int, float]:
    folder = VideoFolder(folder_root, class_names=CLASS_NAMES)
    labels = np.concatenate([folder.clip(k, 0.0, int(SECONDS * 25), 25.0, 8, 8)[1]
                             for k in range(len(folder))])
    counts = np.bincount(labels[labels >= 0], minlength=10)
    return int(counts.argmax()), float(counts.max() / counts.sum())


def _always(model: torch.nn.Module, class_id: int) -> torch.nn.Module:
    """The model answers `class_id` whatever it sees: a model exactly at chance."""
    with torch.no_grad():
        model.classifier.head.weight.zero_()
        model.classifier.head.bias.zero_()
        model.classifier.head.bias[class_id] = 10.0
    return model.eval()


@pytest.fixture(scope="module")
def chance_model(tmp_path_factory, digits_folder):
    """A V1 checkpoint and a full-frame comparison, both always answering the folder's
    majority class: AdaFocus is 5x cheaper and exactly as accurate as full-frame."""
    majority, _ = _majority(digits_folder)
    out = tmp_path_factory.mktemp("chance") / "chance.pt"
    cfg = preset("tiny")
    save_checkpoint(out, _always(AdaFocus(cfg), majority), CLASS_NAMES,
                    training={"shipped": "v1"})
    save_comparisons(out.with_name("chance.compare.pt"),
                     {"full_frame": _always(FullFrame(cfg), majority)},
                     {"full_frame": {"calibration": None, "accuracy": 0.1}}, "v1")
    return out


def test_eval_data_reports_chance_and_judges_no_target_of_a_model_at_chance(
        chance_model, digits_folder, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "eval", str(chance_model),
                           "--data", str(digits_folder), "--out", str(tmp_path),
                           "--budgets", "0.3", "--threads", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    majority, share = _majority(digits_folder)
    assert report["chance"] == {"label": CLASS_NAMES[majority], "accuracy": pytest.approx(share)}
    assert f"Chance (always the majority class '{majority}')" in (tmp_path / "report.md"
                                                                   ).read_text()
    assert "3 clips of the folder" in report["streams"] and report["frames"] == 3 * 100
    rows = {r["method"]: r for r in report["rows"]}
    assert set(rows) == {"v1", "full_frame"}
    assert rows["v1"]["accuracy"] == pytest.approx(share)  # exactly at chance
    assert [t["status"] for t in report["targets"]][:2] == ["at chance", "at chance"]
    assert not any(t["met"] for t in report["targets"])
    assert "met:" not in proc.stdout and "AT CHANCE (not judged)" in proc.stdout


def test_a_folder_of_the_test_scenes_scores_like_the_scenes_themselves(digits_folder, tmp_path):
    """The folder path (decode, resize, segment labels) loses nothing the model needs:
    builtin:digits on H.264 copies of test scenes 0..2 scores as on the scenes (skipping
    off; the random patch is left out: its draws are not the scenes' run's)."""
    settings = EvalSettings(streams=3, seconds=SECONDS, budgets=())
    scenes = evaluate("builtin:digits", tmp_path / "scenes", settings, progress=False)
    folder = evaluate("builtin:digits", tmp_path / "folder",
                      EvalSettings(budgets=(), data=str(digits_folder)), progress=False)
    assert folder["changes"] == scenes["changes"] > 0  # the CSV's boundaries are the changes
    assert folder["chance"] == scenes["chance"]
    for mine, theirs in zip(folder["rows"], scenes["rows"], strict=True):
        assert (mine["method"], mine["skip"]) == (theirs["method"], theirs["skip"])
        if mine["method"] != "random":
            assert abs(mine["accuracy"] - theirs["accuracy"]) < 0.06, mine["method"]
    full = next(r for r in folder["rows"] if r["method"] == "full_frame" and r["skip"] == "off")
    assert full["accuracy"] > 0.8 and len(full["confusion"]) == 10
    assert any(t["status"] == "met" for t in folder["targets"])  # a real model is judged


def test_targets_comparing_a_method_near_chance_are_never_met():
    def row(method, skip, acc, gflops):
        return {"method": method, "title": method, "skip": skip, "accuracy": acc,
                "gflops_per_frame": gflops, "compute_vs_full_frame": gflops / 0.09,
                "median_delay_s": 0.1, "median_delay_all_s": 0.2, "missed_fraction": 0.0}

    rows = [row("full_frame", "off", 0.12, 0.09), row("v1", "off", 0.11, 0.02),
            row("random", "off", 0.50, 0.02), row("center", "off", 0.09, 0.02),
            row("v1", "0.3", 0.11, 0.006)]
    targets = check_targets(rows, EvalSettings(), chance=0.10)
    assert not any(t["met"] for t in targets)
    assert {t["status"] for t in targets} == {"at chance"}
    far = check_targets([row("full_frame", "off", 0.91, 0.09), row("v1", "off", 0.90, 0.02)],
                        EvalSettings(), chance=0.10)
    assert [t["status"] for t in far] == ["met", "met", "missed"]  # the last: no calibration


def test_a_model_of_other_classes_is_never_scored_on_the_digits_scenes(tmp_path):
    patterns = tmp_path / "patterns.pt"
    save_checkpoint(patterns, AdaFocus(preset("tiny", num_classes=4)),
                    ["top-left", "top-right", "bottom-left", "bottom-right"])
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "eval", str(patterns), "--out",
                           str(tmp_path / "eval")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "are not the moving-digits scene's" in proc.stderr and "--data DIR" in proc.stderr
