"""The training code learns: stages run on a tiny, real problem reduce the held-out
loss and beat chance, and an interrupted run resumes to the very same weights, the
label-only recipe included (its evidence boxes recomputed after the resume)."""

import dataclasses

import numpy as np
import pytest
import torch

from adafocus.checkpoint import IMAGENET_NORMALIZATION
from adafocus.config import preset
from adafocus.data.streams import SequenceDataset
from adafocus.models import AdaFocus, GlanceOnly
from adafocus.train import parse_train_config, train
from adafocus.train.config import PPOSection, StageSection, V2Section
from adafocus.train.data import sequences, to_batch
from adafocus.train.loop import StageContext
from adafocus.train.stages import sequence_ce, train_baseline, v1_ppo, v2_train
from adafocus.train.state import RunState
from tests.support.folders import SMALL_MODEL, digits_folder, folder_run
from tests.support.training import TINY_RUN

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [230, 210, 40]], np.uint8)
CONFIG = preset("tiny", num_classes=4, frame_size=(32, 32), glance_size=(16, 16), patch_size=12,
                policy_grid=(3, 3), glance_channels=(8, 16), glance_strides=(2, 2),
                local_channels=(8, 16), local_strides=(2, 2), policy_channels=4,
                policy_hidden=16, classifier_hidden=16)


class SquaresSource:
    """A causal stream of noisy 32x32 frames holding one 6x6 square; its colour is the
    class, its position random. Implements adafocus.data.streams.SequenceSource."""

    fps, num_classes = 25.0, 4

    def sample(self, rng, offsets, change):
        labels = np.full(len(offsets), rng.integers(4), np.int64)
        if change:
            labels[rng.integers(1, len(offsets)):] = (labels[0] + rng.integers(1, 4)) % 4
        frames = rng.integers(90, 160, (len(offsets), 32, 32, 3)).astype(np.uint8)
        for t, y in enumerate(labels):
            x0, y0 = rng.integers(0, 26, 2)
            frames[t, y0:y0 + 6, x0:x0 + 6] = COLOURS[y]
        return frames, labels


def _sampler(seed):
    data = SequenceDataset(SquaresSource(), 6, max_gap=2, gap_mode="random", seed=seed)
    return lambda step: to_batch(*sequences(data, step * 8, 8), torch.device("cpu"),
                                 IMAGENET_NORMALIZATION)


def _context(tmp_path, modules):
    run = RunState(tmp_path / "state.pt", {"test": 1}, modules)
    return StageContext(run, seed=0, sample=_sampler(0), save_every=1000, progress=False)


def _held_out(model, **kw):
    batch = _sampler(seed=99)(0)
    with torch.no_grad():
        model.eval()
        out = model.forward_clip(batch.frames, **kw)
    logits = out if isinstance(out, torch.Tensor) else out.logits
    acc = float((logits.argmax(-1) == batch.labels).float().mean())
    return sequence_ce(logits, batch.labels).item(), acc


def test_baseline_stage_learns_a_tiny_problem(tmp_path):
    torch.manual_seed(0)
    model = GlanceOnly(CONFIG)
    loss0, _ = _held_out(model)
    train_baseline(_context(tmp_path, {"m": model}), "baseline", model,
                   StageSection(steps=150, lr=3e-3))
    loss1, acc1 = _held_out(model)
    assert loss1 < 0.6 * loss0
    assert acc1 > 0.6  # chance is 0.25


def test_v2_end_to_end_and_v1_ppo_stages_learn(tmp_path):
    torch.manual_seed(0)
    v2 = AdaFocus(dataclasses.replace(CONFIG, policy="v2"))
    init = AdaFocus(CONFIG)
    ctx = _context(tmp_path, {"v2": v2})
    loss0, _ = _held_out(v2)
    v2_train(ctx, v2, init, V2Section(train=StageSection(steps=150, lr=3e-3)))
    loss1, acc1 = _held_out(v2)
    assert loss1 < 0.6 * loss0 and acc1 > 0.6

    # PPO moves only the policy: same classifier, a trained actor-critic
    v1 = AdaFocus(CONFIG)
    before = {k: v.clone() for k, v in v1.state_dict().items()}
    summary = v1_ppo(_context(tmp_path / "ppo", {"v1": v1}), v1, PPOSection(steps=20))
    after = v1.state_dict()
    changed = {k.split(".")[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"policy"}
    assert np.isfinite(summary["reward"]) and summary["entropy"] > 0


class Interrupt(Exception):
    pass


def _label_only_run(tmp_path) -> dict:
    """TINY_RUN's counterpart on a folder: the frame stage, boxes from class evidence
    (recomputed after a resume), V1 from the pretraining stages."""
    folder = digits_folder(tmp_path / "clips", clips=3, seconds=1.0)
    raw = folder_run(folder, tmp_path / "unused.pt", steps=4, model={"overrides": SMALL_MODEL})
    raw.update(frames={"steps": 2, "batch_size": 4}, pretrain={"steps": 2, "batch_size": 4},
               boxes={"source": "evidence", "glance_steps": 2, "steps": 2, "batch_size": 2},
               v1={"start": "pretrain", "local_aux": 1.0, "warmup": {"steps": 4},
                   "ppo": {"steps": 2}, "finetune": {"steps": 2}},
               output={"save_every": 2}, precision="float32")
    return raw


@pytest.mark.parametrize("recipe", ["moving-digits", "label-only-folder"])
def test_interrupted_training_resumes_to_identical_weights(tmp_path, monkeypatch, recipe):
    cfg = parse_train_config(TINY_RUN if recipe == "moving-digits" else _label_only_run(tmp_path))
    torch.set_num_threads(1)
    whole = train(cfg, output=tmp_path / "a" / "m.pt", progress=False, log=lambda _: None)

    import adafocus.train.loop as loop

    real = loop.run_stage
    calls = []

    def flaky(ctx, name, section, groups, step_fn, **kw):
        def step(batch, update):  # dies after step 3 of the warm-up, past its save at 2
            calls.append(name)
            if name == "v1.warmup" and calls.count(name) == 3:
                raise Interrupt
            return step_fn(batch, update)
        return real(ctx, name, section, groups, step, **kw)

    monkeypatch.setattr("adafocus.train.stages.run_stage", flaky)
    with pytest.raises(Interrupt):
        train(cfg, output=tmp_path / "b" / "m.pt", progress=False, log=lambda _: None)
    monkeypatch.setattr("adafocus.train.stages.run_stage", real)
    resumed = train(cfg, output=tmp_path / "b" / "m.pt", progress=False, log=lambda _: None)
    assert resumed.shipped == whole.shipped
    summary = torch.load(resumed.checkpoint, weights_only=True)["training"]
    assert summary["boxes"] == ("truth" if recipe == "moving-digits" else "evidence")
    a = torch.load(whole.checkpoint, weights_only=True)["state_dict"]
    b = torch.load(resumed.checkpoint, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_state_from_another_config(tmp_path):
    cfg = parse_train_config(TINY_RUN)
    out = tmp_path / "m.pt"
    train(cfg, output=out, progress=False, log=lambda _: None)
    other = parse_train_config({**TINY_RUN, "seed": 1})
    from adafocus.train import ResumeError

    with pytest.raises(ResumeError, match="different train config"):
        train(other, output=out, progress=False, log=lambda _: None)
