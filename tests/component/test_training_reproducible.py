"""What the README promises of reproducibility, tested: the same train command run twice,
in two processes on the same CPU with the same thread count, writes bit-identical
weights; and the checkpoint says what its weights depend on (torch, CPU, threads,
precision), so a run elsewhere can be told apart."""

from __future__ import annotations

import subprocess
import sys

import torch
import yaml

from tests.support.training import TINY_RUN


def _train(config, out, threads: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "train", str(config), "--output",
                           str(out), "--threads", str(threads), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return torch.load(out, weights_only=True)


def test_two_processes_same_cpu_and_threads_write_identical_weights(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "precision": "float32"}))
    first = _train(config, tmp_path / "a.pt", 1)
    second = _train(config, tmp_path / "b.pt", 1)
    a, b = first["state_dict"], second["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    machine = first["training"]["machine"]
    assert machine["threads"] == 1 and machine["torch"] == torch.__version__
    assert machine["cpu"] and first["training"]["precision"] == "float32"
