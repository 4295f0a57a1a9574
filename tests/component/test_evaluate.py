"""`adafocus-stream eval`: every method runs through the online path on the same test
streams, the report says which targets are met, and the files are well formed."""

import json
import shutil

import numpy as np
import pytest
import torch

from adafocus import OnlineAdaFocus
from adafocus.data.moving_digits import MovingDigitsScene
from adafocus.evaluate import EvalSettings, check_targets, evaluate
from adafocus.evaluate_metrics import frame_accuracy
from adafocus.train import parse_train_config, train
from tests.support.training import TINY_RUN

SETTINGS = EvalSettings(streams=2, seconds=2.0, budgets=(0.3,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "tiny.pt"
    return train(parse_train_config(TINY_RUN), output=out, progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def report(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, evaluate(trained.checkpoint, out, SETTINGS, progress=False)


def test_report_covers_every_method_with_skip_off_and_each_budget(report):
    out, rep = report
    rows = {(r["method"], r["skip"]) for r in rep["rows"]}
    methods = ("glance_only", "full_frame", "center", "random", "v1", "v2")
    assert rows == {(m, s) for m in methods for s in ("off", "0.3")}
    full = next(r for r in rep["rows"] if r["method"] == "full_frame" and r["skip"] == "off")
    assert 1.0 <= full["compute_vs_full_frame"] < 1.05  # f_L on the frame + its GRU head
    loaded = json.loads((out / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded["frames"] == 2 * 50 and len(loaded["targets"]) == 6
    md = (out / "report.md").read_text()
    assert "| method | skip budget | accuracy |" in md and "Targets:" in md
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_is_the_online_path(trained, report):
    _, rep = report
    online = OnlineAdaFocus.from_checkpoint(trained.checkpoint, device="cpu", skip_mode="off")
    scenes = [MovingDigitsScene(k, 128, 128, split="test") for k in range(SETTINGS.streams)]
    preds, truth = [], []
    for t in range(50):
        results = online.step(np.stack([s.frame(t) for s in scenes]), ["a", "b"])
        preds.append([r.class_id for r in results])
        truth.append([s.label_at(t) for s in scenes])
    row = next(r for r in rep["rows"] if r["method"] == trained.shipped and r["skip"] == "off")
    assert row["accuracy"] == frame_accuracy(np.array(preds).T.ravel(), np.array(truth).T.ravel())


def test_without_comparison_file_only_the_checkpoint_is_evaluated(trained, tmp_path):
    alone = tmp_path / "alone.pt"
    shutil.copy(trained.checkpoint, alone)
    rep = evaluate(alone, tmp_path / "eval", SETTINGS, progress=False)
    assert {r["method"] for r in rep["rows"]} == {trained.shipped}
    assert any("comparison models unavailable" in n for n in rep["notes"])


def _row(method, skip, acc, gflops, delay=0.2):
    return {"method": method, "skip": skip, "accuracy": acc, "gflops_per_frame": gflops,
            "compute_vs_full_frame": gflops / 0.09, "median_delay_s": 0.1,
            "median_delay_all_s": delay, "missed_fraction": 0.2}


def test_targets_are_reported_met_or_missed_with_their_numbers():
    rows = [_row("full_frame", "off", 0.91, 0.09), _row("v1", "off", 0.90, 0.02),
            _row("v2", "off", 0.85, 0.02), _row("random", "off", 0.75, 0.02),
            _row("center", "off", 0.85, 0.02), _row("v1", "0.3", 0.86, 0.006, delay=0.6)]
    targets = {t["target"]: t for t in check_targets(rows, EvalSettings())}
    met = {name: t["met"] for name, t in targets.items()}
    assert met == {
        "v1: >= 3x fewer GFLOPs/frame than full-frame": True,       # 4.5x
        "v1: accuracy within 2 points of full-frame": True,         # 1 point
        "v1: >= 10 points above random patch at equal compute": True,   # +15
        "v1: >= 10 points above centre patch at equal compute": False,  # +5
        "v1 skip at budget 0.3: accuracy within 3 points of skip-off": False,  # -4
        "v1 skip at budget 0.3: median change delay < 0.5 s": False,  # 0.6 s
    }
    assert targets["v1: >= 3x fewer GFLOPs/frame than full-frame"]["detail"].startswith("4.50x")
