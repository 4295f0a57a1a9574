"""A real `adafocus-stream run` process, watched the way a user would watch it: a
ZeroMQ subscriber (in a thread of the test process, so in another process than
the pipeline) records every message with its arrival time, /metrics and /healthz
are read over HTTP, and child pids come from the supervisor's log lines
("started producer for stream X (pid N)")."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream.client import Subscriber
from stream.ring import NAME_PREFIX, SHM_DIR, pid_alive, sweep_stale_segments
from tests.support.net import free_port, http_get
from tests.support.processes import Process


def tiny_checkpoint(directory: Path) -> str:
    """An untrained tiny AdaFocus checkpoint: these tests need a real model in the
    loop, not a good one."""
    from adafocus import AdaFocus, preset, save_checkpoint

    path = directory / "tiny.pt"
    save_checkpoint(path, AdaFocus(preset("tiny", num_classes=10)), [str(i) for i in range(10)])
    return str(path)


def pipeline_config(checkpoint: str, streams: list[dict[str, Any]], *,
                    streams_per_process: int = 16, **sections: Any) -> dict:
    """A test pipeline: the model on the CPU (an untrained checkpoint has no skip
    calibration, so every frame goes to it), fast reconnects, loopback ports.
    `streams_per_process` 1 gives every stream a producer process of its own (for
    tests that kill one stream's producer)."""
    return {
        "model": {"checkpoint": checkpoint, "device": "cpu", "skip": {"mode": "off"},
                  "max_batch": 8},
        "streams": streams,
        "ingest": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0, "stall_timeout_s": 2.0,
                   "open_timeout_s": 3.0, "streams_per_process": streams_per_process},
        "publish": {"bind": f"tcp://127.0.0.1:{free_port()}"},
        "metrics": {"bind": f"127.0.0.1:{free_port()}"},
        **sections,
    }


class Collector(threading.Thread):
    """Every message of the public socket, with time.monotonic() of arrival."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(name="collector", daemon=True)
        self._endpoint = endpoint
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._messages: list[tuple[float, str, dict[str, Any]]] = []
        self.malformed = 0

    def run(self) -> None:
        with Subscriber(self._endpoint, events=True) as subscriber:
            while not self._done.is_set():
                message = subscriber.recv(timeout=0.1)
                if message is not None:
                    with self._lock:
                        self._messages.append((time.monotonic(), message.kind, message.payload))
            self.malformed = subscriber.malformed

    def close(self) -> None:
        self._done.set()
        self.join(5)

    def _of(self, kind: str, stream: str, since: float) -> list[dict[str, Any]]:
        with self._lock:
            return [p for t, k, p in self._messages if k == kind and p["stream"] == stream
                    and t >= since]

    def labels(self, stream: str, since: float = 0.0) -> list[dict[str, Any]]:
        return self._of("label", stream, since)

    def events(self, stream: str, since: float = 0.0) -> list[dict[str, Any]]:
        return self._of("event", stream, since)

    def wait_labels(self, stream: str, count: int = 1, since: float = 0.0,
                    timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(found := self.labels(stream, since)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} labels from {stream!r} "
                                     f"within {timeout:g} s; its events: {self.events(stream)}")
            time.sleep(0.05)
        return found

    def wait_event(self, stream: str, states: tuple[str, ...], since: float = 0.0,
                   timeout: float = 30.0, detail: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events(stream, since):
                if event["state"] in states and detail in event["detail"]:
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {states} event with {detail!r} from {stream!r} within "
                                     f"{timeout:g} s; saw {self.events(stream, since)}")
            time.sleep(0.05)


class Pipeline(Process):
    """`adafocus-stream run CONFIG [ARGS]` with `config` written to `name`.yaml in
    `workdir`, its metric files under `name`-metrics, and (with `collect`) a
    Collector subscribed to its results."""

    def __init__(self, workdir: Path, config: dict[str, Any], name: str = "pipeline",
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 collect: bool = True) -> None:
        self.base_config = config
        self.config_path = workdir / f"{name}.yaml"
        self.write_config(config)
        self.metrics_url = f"http://{config['metrics']['bind']}"
        self.publish = config["publish"]["bind"]
        self.shared_metrics_dir = workdir / f"{name}-metrics"
        self.collector = Collector(self.publish) if collect else None
        if self.collector is not None:
            self.collector.start()
        super().__init__(
            [sys.executable, "-m", "stream.cli", "run", str(self.config_path), *args],
            workdir / f"{name}.log",
            env={"PROMETHEUS_MULTIPROC_DIR": str(self.shared_metrics_dir), **(env or {})},
        )

    @property
    def metrics_dir(self) -> Path:
        """This run's own folder inside PROMETHEUS_MULTIPROC_DIR (stream.serve.rundir)."""
        (folder,) = self.shared_metrics_dir.glob(f"adafocus-{self.pid}-*")
        return folder

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def with_log(self, exc: AssertionError) -> AssertionError:
        """`exc` with the end of the pipeline's log, for a failing test's report."""
        return AssertionError(f"{exc}\n--- pipeline log ---\n{self.log_text()[-6000:]}")

    def wait_serving(self, timeout_s: float) -> dict[str, Any]:
        """Wait until /healthz answers (200 or 503) and return its body."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pipeline exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return self.healthz()[1]
            except (OSError, ValueError):
                time.sleep(0.2)
        raise AssertionError(f"pipeline not serving after {timeout_s} s:\n{self.log_tail()}")

    def _pids(self, pattern: str) -> list[int]:
        return [int(p) for p in re.findall(pattern, self.log_text())]

    def producer_pids(self, stream: str) -> list[int]:
        return self._pids(rf"started producer for stream {re.escape(stream)} \(pid (\d+)\)")

    def worker_pids(self) -> list[int]:
        return self._pids(r"started inference worker \(pid (\d+)\)")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = http_get(self.metrics_url + "/metrics")
        assert status == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
        }

    def healthz(self) -> tuple[int, dict[str, Any]]:
        status, body = http_get(self.metrics_url + "/healthz")
        return status, json.loads(body)

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM; the exit status, or None if still running after `timeout`."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def rings(self) -> list[str]:
        return [p.name for p in SHM_DIR.glob(f"{NAME_PREFIX}{self.pid}_*")]

    def close(self) -> None:
        self.stop(grace_s=5)
        if self.collector is not None:
            self.collector.close()
        for name in self.rings():  # only after a failure: the test reports it
            (SHM_DIR / name).unlink(missing_ok=True)


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def assert_seq_increasing(labels: list[dict[str, Any]], stream: str) -> None:
    seqs = [m["seq"] for m in labels]
    assert all(b > a for a, b in pairwise(seqs)), f"{stream}: seq not increasing: {seqs}"


def orphaned_rings() -> list[str]:
    """Ring segments whose creator (a supervisor) is gone: what a pipeline that
    exited failed to unlink. Rings of pipelines still running (other tests on the
    same machine) are not counted."""
    return [path.name for path in SHM_DIR.glob(NAME_PREFIX + "*")
            if not pid_alive(int(path.name[len(NAME_PREFIX):].split("_", 1)[0]))]


def sweep_shared_memory() -> None:
    """Remove ring segments of pipelines a test killed with SIGKILL."""
    sweep_stale_segments()
