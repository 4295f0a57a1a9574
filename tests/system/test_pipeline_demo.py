"""`adafocus-stream demo`: the real pipeline on synthetic digit cameras, watched
through the public socket, printing labels next to the truth; it stops by
itself after --duration and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.net import free_port
from tests.support.pipeline import orphaned_rings, tiny_checkpoint

pytestmark = pytest.mark.slow

DURATION_S = 20


def trained_digits_model() -> bool:
    from adafocus.interface import BUILTIN_DIR

    return (BUILTIN_DIR / "digits.pt").is_file()


def test_demo_prints_live_labels_next_to_the_truth_and_stops_after_duration(tmp_path):
    trained = trained_digits_model()
    model = [] if trained else ["--checkpoint", tiny_checkpoint(tmp_path), "--skip-mode", "off"]
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--duration", str(DURATION_S),
         "--cameras", "2", "--fps", "10", *model,
         "--publish", f"tcp://127.0.0.1:{free_port()}", "--metrics", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=DURATION_S + 30,
    )  # fmt: skip
    output = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for camera in ("cam-1", "cam-2"):
        line = re.compile(rf"{camera} seq=\s*\d+ label=\d\s+score=[\d.]+ truth=\d ")
        assert line.search(output), f"no live label line for {camera}:\n{output[-2000:]}"
    summary = re.search(r"demo: (\d+) labels from 2 camera\(s\); accuracy ([\d.]+)%", output)
    assert summary and int(summary.group(1)) > 0, output[-2000:]
    if trained:  # ten classes: chance is 10%
        assert float(summary.group(2)) > 50.0, output[-2000:]
    assert orphaned_rings() == []
