"""Starting and stopping `adafocus-stream run` as an operator does, with the inputs
that used to end in a traceback or a lie: a stop during start-up, a second
pipeline on the same ports, bad files, passwords with odd characters, and a
supervisor that was SIGKILLed. Every failure is one line and exit status 2, and
nothing is left behind."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
import zmq.auth

from stream.config import parse_config
from stream.ring import ring_bytes, shared_memory_free
from stream.serve.endpoints import warn_if_exposed
from tests.support.net import wait_until
from tests.support.pipeline import (
    Pipeline,
    metric,
    orphaned_rings,
    pipeline_config,
    tiny_checkpoint,
)
from tests.support.processes import Process

pytestmark = pytest.mark.slow

PASSWORD = "Pa/ss#w?rd"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return tiny_checkpoint(tmp_path_factory.mktemp("model"))


def run_cli(config: Path, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", str(config)], capture_output=True,
        text=True, timeout=timeout, env={**os.environ, "TMPDIR": str(tmp_path)},
    )


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING) ")


def one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    """Exit 2 and one line that says what is wrong, beside the service's own
    (timestamped) log lines; never a traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def synthetic(count: int) -> list[dict[str, str]]:
    return [{"id": f"s-{i:03d}", "uri": f"synthetic://pattern?fps=5&seed={i}"}
            for i in range(count)]


def test_sigterm_while_producers_start_stops_at_once_with_nothing_left(
    checkpoint: str, tmp_path: Path
) -> None:
    config = pipeline_config(checkpoint, synthetic(150), ingest={"ring_slots": 2})
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(config))
    process = Process([sys.executable, "-m", "stream.cli", "run", str(path)],
                      tmp_path / "many.log", env={"TMPDIR": str(tmp_path)})
    try:
        wait_until(lambda: "started producer for stream s-005" in process.log.read_text(), 120,
                   "the sixth producer")
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(60) == 0
    finally:
        process.stop(grace_s=5)
    log = process.log.read_text()
    assert "stopping (SIGTERM)" in log, log[-3000:]
    after_stop = log.split("stopping (SIGTERM)", 1)[1]
    assert "started producer" not in after_stop, after_stop
    assert log.count("started producer") < 150
    assert "Traceback" not in log
    assert orphaned_rings() == []
    assert not list(tmp_path.glob("adafocus-*")), "the run folder was left behind"


def test_a_second_pipeline_on_the_same_ports_leaves_the_first_untouched(
    checkpoint: str, tmp_path: Path
) -> None:
    config = pipeline_config(checkpoint, synthetic(1))
    first = Pipeline(tmp_path, config)
    try:
        first.collector.wait_labels("s-000", timeout=60)
        files_before = sorted(p.name for p in first.metrics_dir.iterdir())
        second = tmp_path / "second.yaml"
        second.write_text(yaml.safe_dump(config))
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(first.shared_metrics_dir)}
        result = subprocess.run([sys.executable, "-m", "stream.cli", "run", str(second)],
                                capture_output=True, text=True, timeout=120, env=env)
        one_line_error(result, "publish.bind: cannot bind")
        assert sorted(p.name for p in first.metrics_dir.iterdir()) == files_before
        decoded = metric(first.metrics(), "adafocus_frames_decoded_total", stream="s-000")
        wait_until(lambda: metric(first.metrics(), "adafocus_frames_decoded_total",
                                  stream="s-000") > decoded, 30, "the first keeps counting")
    finally:
        first.close()


def test_the_run_folder_of_a_killed_supervisor_is_swept_at_the_next_start(
    checkpoint: str, tmp_path: Path
) -> None:
    config = pipeline_config(checkpoint, synthetic(1))
    killed = Pipeline(tmp_path, config)
    try:
        killed.collector.wait_labels("s-000", timeout=60)
        run_folder = next(Path(tempfile.gettempdir()).glob(f"adafocus-{killed.pid}-*"))
        metrics_folder = killed.metrics_dir
        killed.kill_group()  # SIGKILL: nothing gets to clean up
    finally:
        killed.close()
    assert run_folder.exists() and metrics_folder.exists()
    config = pipeline_config(checkpoint, synthetic(1))
    again = Pipeline(tmp_path, config)
    try:
        again.collector.wait_labels("s-000", timeout=60)
        assert not run_folder.exists() and not metrics_folder.exists()
        assert "removed 1 run folder(s) left by dead supervisors" in again.log_text()
    finally:
        again.close()


@pytest.mark.parametrize("case", ["not-utf8", "public-key", "garbage-key", "huge-ring"])
def test_bad_files_are_one_line_and_exit_2(case: str, checkpoint: str, tmp_path: Path) -> None:
    config = pipeline_config(checkpoint, synthetic(1))
    path = tmp_path / "pipeline.yaml"
    expected = {"not-utf8": "not UTF-8", "public-key": "has no secret key",
                "garbage-key": "not a ZeroMQ certificate", "huge-ring": "ingest.ring_slots"}
    if case == "not-utf8":
        path.write_bytes(yaml.safe_dump(config).encode() + b"# caf\xe9\n")
    else:
        keys = tmp_path / "keys"
        keys.mkdir()
        public, _ = zmq.auth.create_certificates(keys, "server")
        garbage = keys / "garbage.key_secret"
        garbage.write_text("not a certificate at all\n")
        if case == "huge-ring":
            config["ingest"] = {"ring_slots": 1_000_000_000_000}
        else:
            key = public if case == "public-key" else garbage
            config["publish"]["curve"] = {"server_secret_key": str(key),
                                          "authorized_clients": str(keys)}
        path.write_text(yaml.safe_dump(config))
    one_line_error(run_cli(path, tmp_path), expected[case])


def test_rings_that_cannot_fit_in_shared_memory_are_refused_before_any_starts(
    checkpoint: str, tmp_path: Path
) -> None:
    slots = 1024
    streams = shared_memory_free() // ring_bytes(slots, 128, 128) + 1
    config = pipeline_config(checkpoint, synthetic(int(streams)), ingest={"ring_slots": slots},
                             limits={"max_streams": int(streams)})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli(path, tmp_path, timeout=180)
    one_line_error(result, "ingest.ring_slots:", "MiB of shared memory", "/dev/shm has")
    assert orphaned_rings() == []


def test_passwords_with_slashes_hashes_or_questions_never_print(
    checkpoint: str, tmp_path: Path
) -> None:
    bad = {"id": "cam", "uri": f"rtsp://viewer:{PASSWORD}@10.0.0.5:99999/cam"}
    config = pipeline_config(checkpoint, [bad])
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli(path, tmp_path)
    one_line_error(result, "streams[0].uri", "viewer:***@")
    for fragment in (PASSWORD, "Pa/ss", "w?rd", "ss#w"):
        assert fragment not in result.stderr


def test_streams_beyond_the_limits_are_refused_at_start_and_on_reload(
    checkpoint: str, tmp_path: Path
) -> None:
    """Admission: 3 streams with limits.max_streams 2 never start (one line, exit 2,
    nothing spawned); a running pipeline refuses a reload to 3 and keeps serving
    what it had, then accepts a reload within the limit."""
    limits = {"max_streams": 2}
    config = pipeline_config(checkpoint, synthetic(3), limits=limits)
    path = tmp_path / "too-many.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli(path, tmp_path)
    one_line_error(result, "limits.max_streams: 3 streams to serve, the limit is 2")
    assert "started" not in result.stderr

    running = Pipeline(tmp_path, pipeline_config(checkpoint, synthetic(1), limits=limits))
    try:
        running.collector.wait_labels("s-000", timeout=60)
        running.write_config({**running.base_config, "streams": synthetic(3)})
        running.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in running.log_text(), 30, "the refused reload")
        refused = [ln for ln in running.log_text().splitlines() if "reload refused" in ln]
        assert "keeping the running config: limits.max_streams: 3 streams" in refused[0]
        assert "started producer for stream s-001" not in running.log_text()
        running.write_config({**running.base_config, "streams": synthetic(2)})
        running.signal(signal.SIGHUP)
        running.collector.wait_labels("s-001", timeout=60)
        assert sorted(running.healthz()[1]["streams"]) == ["s-000", "s-001"]
    except AssertionError as exc:
        raise running.with_log(exc) from exc
    finally:
        running.close()


def test_a_reload_with_a_bad_uri_logs_no_password(checkpoint: str, tmp_path: Path) -> None:
    config = pipeline_config(checkpoint, synthetic(1))
    running = Pipeline(tmp_path, config)
    try:
        running.collector.wait_labels("s-000", timeout=60)
        broken = {"id": "cam", "uri": f"rtsp://viewer:{PASSWORD}@10.0.0.5:99999/cam"}
        running.write_config({**config, "streams": [*config["streams"], broken]})
        running.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in running.log_text(), 30, "the failed reload")
        assert "viewer:***@" in running.log_text()
        for fragment in (PASSWORD, "Pa/ss", "w?rd"):
            assert fragment not in running.log_text()
    finally:
        running.close()


def test_binding_beyond_loopback_without_protection_logs_one_warning_each(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"only checked to exist")
    exposed = parse_config({
        "model": {"checkpoint": str(checkpoint)}, "streams": synthetic(1),
        "publish": {"bind": "tcp://0.0.0.0:5556"}, "metrics": {"bind": "0.0.0.0:9108"},
    })
    with caplog.at_level(logging.WARNING):
        warn_if_exposed(exposed)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "publish.bind tcp://0.0.0.0:5556 is beyond loopback without CURVE" in warnings[0]
    assert "metrics.bind 0.0.0.0:9108 is beyond loopback" in warnings[1]
    caplog.clear()
    loopback = parse_config({"model": {"checkpoint": str(checkpoint)},
                             "streams": synthetic(1)})
    with caplog.at_level(logging.WARNING):
        warn_if_exposed(loopback)
    assert caplog.records == []
