"""adafocus.loading.load_online: the server's one loader serves checkpoints and
baseline files alike, and never imports the training package."""

import subprocess
import sys

import torch

from adafocus import preset
from adafocus.baselines import save_baseline
from adafocus.models import FullFrame

NAMES = [str(i) for i in range(10)]


def test_serving_a_checkpoint_or_a_baseline_never_imports_training_code(tmp_path):
    torch.manual_seed(0)
    baseline = save_baseline(tmp_path / "full.pt", FullFrame(preset("tiny")), NAMES,
                             trained=False)
    # torch itself imports tqdm when it is installed (torch.hub), so "tqdm not in
    # sys.modules" cannot hold; making it unimportable proves no serving code needs it
    code = f"""
import sys
sys.modules["tqdm"] = None
import numpy as np
from adafocus.interface import OnlineModel
from adafocus.loading import load_online
frame = np.zeros((1, 128, 128, 3), np.uint8)
for spec in ("builtin:digits", {str(baseline)!r}):
    model = load_online(spec, device="cpu")
    assert isinstance(model, OnlineModel) and model.device == "cpu", type(model)
    assert model.step(frame, ["cam"])[0].label in model.class_names
    model.drop("cam")
leaked = sorted(m for m in sys.modules if m.startswith("adafocus.train"))
assert not leaked, leaked
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_bad_baseline_file_is_refused_naming_every_problem(tmp_path):
    from typing import get_args

    import pytest

    from adafocus import CheckpointError
    from adafocus.loading import load_online
    from adafocus.metadata import BaselineMetadata
    from adafocus.models.baselines import BASELINES

    assert set(get_args(BaselineMetadata.model_fields["kind"].annotation)) == set(BASELINES)
    path = save_baseline(tmp_path / "full.pt", FullFrame(preset("tiny")), NAMES)
    data = torch.load(path, weights_only=True)
    data.update(kind="half_frame", trained="yes")
    torch.save(data, path)
    with pytest.raises(CheckpointError) as err:
        load_online(path, device="cpu")
    assert "kind: expected 'glance_only' or 'full_frame', got 'half_frame'" in str(err.value)
    assert "trained: expected true or false, got str" in str(err.value)
