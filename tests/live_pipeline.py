"""Real `adafocus-stream run` / `proxy` processes for the deploy tests (multi-node,
Prometheus scrape): loopback ports, a private metrics directory per pipeline, a
process group per pipeline so a test can kill a whole "node", and cleanup that
never leaves processes or shared memory behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_checkpoint(directory: Path) -> str:
    """An untrained tiny AdaFocus checkpoint (the deploy tests need a real model
    in the loop, not a good one)."""
    from adafocus import AdaFocus, preset, save_checkpoint

    path = directory / "tiny.pt"
    save_checkpoint(path, AdaFocus(preset("tiny", num_classes=10)), [str(i) for i in range(10)])
    return str(path)


def write_config(
    path: Path,
    checkpoint: str,
    streams: list[dict[str, Any]],
    pub_port: int,
    metrics_port: int,
    shard: tuple[int, int] = (0, 1),
) -> Path:
    config = {
        # An untrained checkpoint has no skip calibration: every frame goes to the model.
        "model": {
            "checkpoint": checkpoint,
            "device": "cpu",
            "max_batch": 8,
            "skip": {"mode": "off"},
        },
        "streams": streams,
        "publish": {"bind": f"tcp://127.0.0.1:{pub_port}"},
        "metrics": {"bind": f"127.0.0.1:{metrics_port}"},
        "shard": {"index": shard[0], "count": shard[1]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Process:
    """A child in its own process group, output to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            args,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill_group(self) -> None:
        """SIGKILL the process and its children: a node dying."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM (graceful), then SIGKILL for whatever is left of the group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log_file.close()


class Pipeline(Process):
    """`adafocus-stream run --config PATH [ARGS]` with its own metrics directory
    (and `env` added to the environment)."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        name: str,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        spec = yaml.safe_load(config.read_text())
        self.metrics_url = f"http://{spec['metrics']['bind']}"
        self.publish = spec["publish"]["bind"]
        super().__init__(
            [sys.executable, "-m", "stream.cli", "run", "--config", str(config), *args],
            workdir / f"{name}.log",
            env={"PROMETHEUS_MULTIPROC_DIR": str(workdir / f"{name}-metrics"), **(env or {})},
        )

    def wait_serving(self, timeout_s: float) -> dict[str, Any]:
        """Wait until /healthz answers (200 or 503) and return its body."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pipeline exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                _, body = http_get(self.metrics_url + "/healthz")
                return json.loads(body)
            except (OSError, ValueError):
                time.sleep(0.2)
        raise AssertionError(f"pipeline not serving after {timeout_s} s:\n{self.log_tail()}")


def sweep_shared_memory() -> None:
    """Remove ring segments of pipelines a test killed with SIGKILL."""
    from stream.ring import sweep_stale_segments

    sweep_stale_segments()
