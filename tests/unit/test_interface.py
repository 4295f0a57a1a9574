"""adafocus.interface: the torch-free contract between the model library and the
service (result type, skip modes, cost record, checkpoint specs)."""

import subprocess
import sys

import pytest

from adafocus.interface import (
    BUILTIN_DIR,
    COMPONENTS,
    CheckpointError,
    Costs,
    builtin_names,
    check_skip_mode,
    resolve_spec,
)


def test_the_interface_its_lazy_exports_and_the_publisher_import_without_torch():
    code = ("import sys\n"
            "from adafocus import SKIP_MODES, StepResult, Costs, OnlineModel, resolve_spec\n"
            "import adafocus.interface, stream.wire.messages\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_builtin_specs_resolve_inside_the_package_and_unknown_ones_list_the_names(tmp_path):
    assert resolve_spec("builtin:digits") == BUILTIN_DIR / "digits.pt"
    assert builtin_names() == ["digits"]  # digits.compare.pt is not a checkpoint
    with pytest.raises(CheckpointError, match=r"no builtin checkpoint 'nope'; available: digits"):
        resolve_spec("builtin:nope")
    with pytest.raises(CheckpointError, match="no builtin checkpoint"):
        resolve_spec("builtin:../digits")
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        resolve_spec(tmp_path / "missing.pt")
    path = tmp_path / "model.pt"
    path.write_bytes(b"")
    assert resolve_spec(str(path)) == path


def test_learned_and_unknown_skip_modes_are_refused_saying_why():
    for mode in (None, "off", "confidence"):
        check_skip_mode(mode)
    with pytest.raises(ValueError, match="needs a learned skip head"):
        check_skip_mode("learned")
    with pytest.raises(ValueError, match="one of off, confidence, got 'sometimes'"):
        check_skip_mode("sometimes")


def test_costs_round_trip_through_the_checkpoint_dict_in_component_order():
    table = {name: float(i) / 10 for i, name in enumerate(COMPONENTS)}
    costs = Costs.from_dict(table)
    assert costs.local == table["local"] and costs.local_full == table["local_full"]
    assert list(costs.as_dict().items()) == list(table.items())
    with pytest.raises(TypeError):
        Costs.from_dict({**table, "extra": 1.0})
