"""`adafocus-stream run` with a config it cannot use: exit status 2 and one clear
line naming the problem, no traceback, nothing left running or in /dev/shm."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.pipeline import orphaned_rings, pipeline_config, tiny_checkpoint

CAMERA = {"id": "cam", "uri": "synthetic://pattern?fps=5"}


def run_pipeline(tmp_path: Path, config: dict[str, Any], timeout: float = 60) -> tuple[int, str]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", str(path)],
        capture_output=True, text=True, timeout=timeout,
    )
    assert orphaned_rings() == [], "shared memory left behind"
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("adafocus-stream run:")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return tiny_checkpoint(tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cameras": 2}, "cameras: unknown key"),
        ({"streams": [{"id": "cam", "uri": "ftp://camera/stream"}]}, "streams[0].uri: "),
        ({"model": {"checkpoint": "missing.pt"}}, "model.checkpoint: no such file"),
        ({"model": {"checkpoint": "builtin:nope"}}, "model.checkpoint: no builtin checkpoint"),
        ({"model": {"device": "gpu"}}, "model.device: expected auto, cpu, cuda or cuda:N"),
    ],
    ids=["unknown-key", "bad-uri", "missing-checkpoint", "unknown-builtin", "bad-device"],
)
def test_invalid_config_exits_2_with_one_line_naming_the_key(
    tmp_path, checkpoint, change, message
):
    config = pipeline_config(checkpoint, [CAMERA])
    config = {**config, **change, "model": {**config["model"], **change.get("model", {})}}
    code, stderr = run_pipeline(tmp_path, config, timeout=30)
    assert code == 2
    assert stderr.count("\n") == 1, stderr
    assert message in stderr


def test_checkpoint_that_is_not_a_model_exits_2_with_one_error_line(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    code, stderr = run_pipeline(tmp_path, pipeline_config(str(garbage), [CAMERA]))
    assert code == 2
    (line,) = errors(stderr)
    assert "model.checkpoint:" in line and "garbage.pt" in line


def test_results_port_in_use_exits_2_with_one_error_line(tmp_path, checkpoint):
    config = pipeline_config(checkpoint, [CAMERA])
    port = int(config["publish"]["bind"].rsplit(":", 1)[1])
    with socket.create_server(("127.0.0.1", port)):
        code, stderr = run_pipeline(tmp_path, config)
    assert code == 2
    (line,) = errors(stderr)
    assert f"publish.bind: cannot bind tcp://127.0.0.1:{port}" in line
