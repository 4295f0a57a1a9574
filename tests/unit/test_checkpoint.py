"""Checkpoints load only plain data, validate everything, and fail clearly."""

import collections

import numpy as np
import pytest
import torch

from adafocus import (
    AdaFocus,
    CheckpointError,
    OnlineAdaFocus,
    load_checkpoint,
    preset,
    save_checkpoint,
)

NAMES = [str(i) for i in range(10)]
CALIBRATION = {"version": 1, "max_span": 6, "default_budget": 0.3, "entries": [
    {"budget": 0.3, "pixel_change": 2.0, "glance_change": 0.1, "confidence": 0.5,
     "cost": 0.25, "agreement": 0.97, "met": True}]}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AdaFocus(preset("tiny")).eval()


@pytest.fixture
def saved(tmp_path, model):
    return save_checkpoint(tmp_path / "m.pt", model, NAMES, skip_calibration=CALIBRATION,
                           training={"dataset": "moving-digits", "val_accuracy": 0.5})


def raw(path):
    return torch.load(path, weights_only=True)


def test_round_trip_restores_weights_metadata_and_the_online_runner(saved, model):
    checkpoint = load_checkpoint(saved)
    assert checkpoint.config == model.config and checkpoint.class_names == NAMES
    assert checkpoint.training["dataset"] == "moving-digits"
    rebuilt = checkpoint.build_model()
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor)
    online = OnlineAdaFocus.from_checkpoint(str(saved), device="cpu")
    assert online.frame_size == (128, 128) and online.class_names == NAMES
    assert online.skip is not None and online.skip.max_span == 6  # calibration -> skip on
    off = OnlineAdaFocus.from_checkpoint(saved, device="cpu", skip_mode="off")
    assert off.skip is None
    frame = np.zeros((1, 128, 128, 3), np.uint8)
    assert off.step(frame, ["x"])[0].label in NAMES
    assert not list(saved.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_a_truncated_file_is_reported_as_truncated(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        load_checkpoint(saved)


def test_foreign_files_and_pickled_objects_are_refused_without_unpickling(tmp_path, saved):
    text = tmp_path / "notes.pt"
    text.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_checkpoint(text)

    class Payload:  # would run code on unpickling with a plain torch.load
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    data = raw(saved)
    data["training"] = {"hook": Payload()}
    torch.save(data, evil)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(evil)

    other = tmp_path / "resnet.pt"
    torch.save(collections.OrderedDict(weight=torch.zeros(2)), other)
    with pytest.raises(CheckpointError, match="not an adafocus-stream checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no builtin checkpoint 'nope'"):
        load_checkpoint("builtin:nope")


def _rewrite(path, edit):
    data = raw(path)
    edit(data)
    torch.save(data, path)
    return path


def test_class_count_mismatches_are_named(saved):
    with pytest.raises(CheckpointError, match="class-count mismatch: checkpoint has 10 classes"):
        load_checkpoint(saved, num_classes=12)
    _rewrite(saved, lambda d: d["class_names"].append("10"))
    with pytest.raises(CheckpointError, match="class_names: class-count mismatch: 11 class_names"):
        load_checkpoint(saved)


def test_weights_for_another_class_count_are_named(saved):
    def twelve_classes(d):
        d["config"]["num_classes"] = 12
        d["class_names"] = [str(i) for i in range(12)]
        d["gflops"] = {k: float(v) for k, v in d["gflops"].items()}

    _rewrite(saved, twelve_classes)
    with pytest.raises(CheckpointError, match="class-count mismatch: weights have 10 classes"):
        load_checkpoint(saved)


def test_input_size_mismatches_are_named(saved):
    with pytest.raises(CheckpointError, match=r"input-size mismatch: checkpoint expects frames"):
        load_checkpoint(saved, frame_size=(224, 224))

    def bigger_glance(d):
        d["config"]["glance_size"] = (64, 64)
        from adafocus import component_gflops
        from adafocus.config import config_from_dict
        d["gflops"] = component_gflops(config_from_dict(d["config"])).as_dict()

    _rewrite(saved, bigger_glance)
    with pytest.raises(CheckpointError, match="input-size mismatch: the policy"):
        load_checkpoint(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="adafocus-stream/0"), "not an adafocus-stream checkpoint"),
    (lambda d: d.pop("gflops"), "gflops: required key is missing"),
    (lambda d: d["config"].update(policy="v3"), "config.policy: expected 'v1' or 'v2', got 'v3'"),
    (lambda d: d["config"].pop("patch_size"), "config.patch_size: required key is missing"),
    (lambda d: d["normalization"].update(std=[0.2, 0.0, 0.2]),
     r"normalization.std\[1\]: must be > 0.0, got 0.0"),
    (lambda d: d["gflops"].update(local=1.0), "gflops.local: 1.0 does not match the config"),
    (lambda d: d["skip_calibration"].update(version=9), "skip_calibration.version: expected 1"),
    (lambda d: d["state_dict"].pop("classifier.head.bias"), "missing"),
    (lambda d: d["state_dict"].update(extra=torch.zeros(1)), r"unexpected \['extra'\]"),
])
def test_bad_metadata_is_refused_with_a_message_naming_it(saved, edit, message):
    _rewrite(saved, edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


def test_from_checkpoint_rejects_bad_devices_and_skip_settings(saved):
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda' or 'cuda:N'"):
        OnlineAdaFocus.from_checkpoint(saved, device="tpu")
    with pytest.raises(ValueError, match="skip mode must be one of"):
        OnlineAdaFocus.from_checkpoint(saved, device="cpu", skip_mode="sometimes")
    with pytest.raises(ValueError, match="calibrated budgets"):
        OnlineAdaFocus.from_checkpoint(saved, device="cpu", budget=0.1)
    _rewrite(saved, lambda d: d.update(skip_calibration=None))
    with pytest.raises(ValueError, match="no skip calibration"):
        OnlineAdaFocus.from_checkpoint(saved, device="cpu", skip_mode="confidence")



def test_every_metadata_problem_is_named_at_once_at_its_key(saved):
    def three_mistakes(d):
        d["normalization"]["mean"] = [0.5, 0.5]
        d["class_names"][3] = 3
        d["notes"] = "hand-edited"

    _rewrite(saved, three_mistakes)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved)
    message = str(err.value)
    assert "class_names[3]: expected a string, got int" in message
    assert "normalization.mean[2]: required item is missing" in message
    assert "notes: unknown key (allowed: config, class_names" in message
    assert "hand-edited" not in message  # values are never echoed
