"""A real `adafocus-stream run` process for the end-to-end tests, watched the way a
user would: a ZeroMQ subscriber (in a thread of the test process, so in another
process than the pipeline) records every message with its arrival time, /metrics
and /healthz are read over HTTP, and child pids come from the supervisor's log
lines ("started producer for stream X (pid N)")."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from live_pipeline import Process, free_port, http_get
from prometheus_client.parser import text_string_to_metric_families

from stream.client import Subscriber
from stream.ring import NAME_PREFIX, SHM_DIR


class Collector(threading.Thread):
    """Every message of the public PUB socket, with time.monotonic() of arrival."""

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

    def label_times(self, stream: str) -> list[float]:
        with self._lock:
            return [t for t, k, p in self._messages if k == "label" and p["stream"] == stream]

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


def assert_seq_increasing(labels: list[dict[str, Any]], stream: str) -> None:
    seqs = [m["seq"] for m in labels]
    assert all(b > a for a, b in pairwise(seqs)), f"{stream}: seq not increasing: {seqs}"


def max_gap(times: list[float]) -> float:
    """The longest silence between consecutive arrivals."""
    return max((b - a for a, b in pairwise(times)), default=0.0)


def pipeline_config(checkpoint: str, streams: list[dict[str, Any]], **sections: Any) -> dict:
    """A test pipeline: tiny model on the CPU, fast reconnects, loopback ports."""
    return {
        "model": {"checkpoint": checkpoint, "device": "cpu", "skip": {"mode": "off"},
                  "max_batch": 8},
        "streams": streams,
        "ingest": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0, "stall_timeout_s": 2.0,
                   "open_timeout_s": 3.0},
        "publish": {"bind": f"tcp://127.0.0.1:{free_port()}"},
        "metrics": {"bind": f"127.0.0.1:{free_port()}"},
        **sections,
    }


class RunningPipeline:
    """`python -m stream.cli run CONFIG` in its own session, plus a Collector."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None):
        self.config_path = workdir / "pipeline.yaml"
        self.write_config(config)
        self.metrics_url = f"http://{config['metrics']['bind']}"
        self.shared_metrics_dir = workdir / "metrics"
        self.collector = Collector(config["publish"]["bind"])
        self.collector.start()
        self.process = Process(
            [sys.executable, "-m", "stream.cli", "run", str(self.config_path)],
            workdir / "pipeline.log",
            env={"PROMETHEUS_MULTIPROC_DIR": str(self.shared_metrics_dir), **(env or {})},
        )
        self.pid = self.process.proc.pid

    @property
    def metrics_dir(self) -> Path:
        """This run's own folder inside PROMETHEUS_MULTIPROC_DIR (stream.serve.rundir)."""
        (folder,) = self.shared_metrics_dir.glob(f"adafocus-{self.pid}-*")
        return folder

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")

    def _pids(self, pattern: str) -> list[int]:
        return [int(p) for p in re.findall(pattern, self.log())]

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

    def signal(self, signum: int) -> None:
        self.process.proc.send_signal(signum)

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM; (exit status or None if still running after `timeout`, seconds taken)."""
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            code = self.process.proc.wait(timeout)
        except Exception:
            code = None
        return code, time.monotonic() - started

    def rings(self) -> list[str]:
        return [p.name for p in SHM_DIR.glob(f"{NAME_PREFIX}{self.pid}_*")]

    def close(self) -> None:
        self.process.stop(grace_s=5)
        self.collector.close()
        for name in self.rings():  # only after a failure: the test reports it
            (SHM_DIR / name).unlink(missing_ok=True)


def orphaned_rings() -> list[str]:
    """Ring segments whose creator (a supervisor) is gone: what a pipeline that
    exited failed to unlink. Rings of pipelines still running (other tests on the
    same machine) are not counted."""
    orphaned = []
    for path in SHM_DIR.glob(NAME_PREFIX + "*"):
        pid = int(path.name[len(NAME_PREFIX):].split("_", 1)[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            orphaned.append(path.name)
        except PermissionError:
            pass
    return orphaned


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)
