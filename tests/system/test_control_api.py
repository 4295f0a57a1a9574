"""The stream API against a real pipeline of synthetic cameras: streams added,
changed and removed at run time (over HTTP and with `adafocus-stream streams`),
what a caller without a token or with a bad body hears, changes that survive a
SIGHUP and a restart, and clients that connect and never read. Tests run in file
order on one pipeline; the last one restarts it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from stream.commands.streams import ApiError, call
from stream.ring import SHM_DIR, ring_name
from tests.support import ROOT
from tests.support.net import http_get, http_status, wait_until
from tests.support.pipeline import Pipeline, pipeline_config, tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "test-token-5f2b8c1d9e"
SECRET = "cam-password-77"
MAX_VIEWERS = 24


def camera(stream_id: str, seed: int, fps: int = 10) -> dict[str, str]:
    return {"id": stream_id, "uri": f"synthetic://digits?fps={fps}&seed={seed}"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("control-api")


@pytest.fixture(scope="module")
def config(workdir: Path) -> dict:
    tokens = workdir / "tokens"
    tokens.write_text(f"# operators\n{TOKEN}\n")
    return pipeline_config(tiny_checkpoint(workdir), [camera("a", 1)],
                           api={"token_file": str(tokens), "max_viewers": MAX_VIEWERS})


@pytest.fixture(scope="module")
def pipeline(workdir: Path, config: dict) -> Iterator[Pipeline]:
    running = Pipeline(workdir, config)
    try:
        running.collector.wait_labels("a", timeout=60)
    except AssertionError as exc:
        running.close()
        raise running.with_log(exc) from exc
    yield running
    running.close()


def api(pipeline: Pipeline, method: str, path: str, body: object = None,
        token: str | None = TOKEN) -> object:
    return call(pipeline.metrics_url, method, path, token, body)


def refused(pipeline: Pipeline, method: str, path: str, body: object = None,
            token: str | None = TOKEN) -> ApiError:
    with pytest.raises(ApiError) as caught:
        api(pipeline, method, path, body, token)
    return caught.value


def cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess:
    token_file = Path(pipeline.base_config["api"]["token_file"])
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "streams", "--url", pipeline.metrics_url,
         "--token-file", str(token_file), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=90)


def series_of(pipeline: Pipeline, stream: str) -> list[str]:
    return sorted({name for name, labels in pipeline.metrics() if ("stream", stream) in labels})


def test_reading_needs_no_token_on_loopback_and_the_openapi_schema_is_served(pipeline):
    listed = api(pipeline, "GET", "/streams", token=None)["streams"]
    assert [s["id"] for s in listed] == ["a"]
    one = api(pipeline, "GET", "/streams/a", token=None)
    assert one["state"] == "up" and one["label"] is not None and one["restarts"] == 0
    status, body = http_get(pipeline.metrics_url + "/openapi.json")
    schema = json.loads(body)
    assert status == 200 and {"/streams", "/streams/{stream_id}"} <= set(schema["paths"])


@pytest.mark.parametrize("token", [None, "not-the-token-0123456789"])
def test_a_change_without_a_valid_token_is_401(pipeline, token):
    for method, path in (("POST", "/streams"), ("PUT", "/streams/a"), ("DELETE", "/streams/a")):
        error = refused(pipeline, method, path, camera("z", 9), token=token)
        assert error.status == 401 and error.problems[0].startswith("authorization:")
    assert [s["id"] for s in api(pipeline, "GET", "/streams")["streams"]] == ["a"]


def test_an_invalid_body_is_422_naming_each_key_and_echoing_no_secret(pipeline):
    body = {"id": "bad id", "uri": f"rtsp://admin:{SECRET}@127.0.0.1:1/x",
            "transport": "carrier-pigeon", "realtime": "yes", "colour": 1}
    error = refused(pipeline, "POST", "/streams", body)
    assert error.status == 422
    assert [p.split(":")[0] for p in error.problems] == ["id", "transport", "realtime", "colour"]
    assert SECRET not in json.dumps(error.problems)
    assert refused(pipeline, "PUT", "/streams/a", {"uri": "gopher://x"}).problems[0].startswith(
        "uri:")


def test_an_added_stream_publishes_labels_and_its_uri_is_masked(pipeline):
    """(The issue asks for labels within 10 s, which held on the loaded 2-core
    development machine; the deadline here is generous, since tests assert what
    happens, not how fast.)"""
    c = pipeline.collector
    try:
        added = api(pipeline, "POST", "/streams", camera("b", 2))
        since = time.monotonic()
        assert added["id"] == "b"
        c.wait_labels("b", count=3, since=since - 1, timeout=60)
        hidden = api(pipeline, "POST", "/streams",
                     {"id": "cam-pw", "uri": f"rtsp://admin:{SECRET}@127.0.0.1:1/live"})
        listed = api(pipeline, "GET", "/streams")
        assert SECRET not in json.dumps([hidden, listed])
        assert "admin:***@" in hidden["uri"]
        done = cli(pipeline, "rm", "cam-pw")
        assert done.returncode == 0, done.stderr
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_a_change_restarts_that_stream_only(pipeline):
    c = pipeline.collector
    try:
        a_producers, b_producers = pipeline.producer_pids("a"), pipeline.producer_pids("b")
        changed = api(pipeline, "PUT", "/streams/b", {"uri": "synthetic://digits?fps=10&seed=5"})
        assert changed["uri"].endswith("seed=5")
        assert len(pipeline.producer_pids("b")) == len(b_producers) + 1
        assert pipeline.producer_pids("a") == a_producers
        c.wait_labels("b", count=3, since=time.monotonic(), timeout=30)
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_the_cli_adds_lists_and_removes_a_stream(pipeline):
    try:
        added = cli(pipeline, "add", "c", "synthetic://digits?fps=10&seed=3")
        assert added.returncode == 0 and added.stdout.startswith("added c"), added.stderr
        wait_until(lambda: "c  " in cli(pipeline, "list").stdout, 30, "c in `streams list`")
        twice = cli(pipeline, "add", "c", "synthetic://digits?fps=10&seed=3")
        assert twice.returncode == 1 and "id: stream 'c' exists" in twice.stderr
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_a_removed_stream_goes_down_frees_its_ring_and_leaves_metrics(pipeline):
    c = pipeline.collector
    try:
        wait_until(lambda: series_of(pipeline, "c"), 30, "c's series in /metrics")
        assert (SHM_DIR / ring_name("adafocus", "c", pipeline.pid)).exists()
        removed_at = time.monotonic()
        done = cli(pipeline, "rm", "c")
        assert done.returncode == 0, done.stderr
        c.wait_event("c", ("down",), since=removed_at, timeout=60)
        assert not (SHM_DIR / ring_name("adafocus", "c", pipeline.pid)).exists()
        assert series_of(pipeline, "c") == []
        assert refused(pipeline, "GET", "/streams/c").status == 404
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


def stalled_viewer(pipeline: Pipeline, path: str) -> socket.socket:
    """A client that asks for an endless response and never reads it."""
    host, port = pipeline.base_config["metrics"]["bind"].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.settimeout(30)
    assert sock.recv(12) == b"HTTP/1.1 200"  # it holds a viewer's slot from now on
    return sock


def test_idle_and_stalled_clients_hold_up_neither_metrics_nor_labels(pipeline):
    c = pipeline.collector
    host, port = pipeline.base_config["metrics"]["bind"].rsplit(":", 1)
    threads_before = threads_of(pipeline.pid)
    try:
        with ExitStack() as stack:
            for _ in range(200):
                stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
            for i in range(MAX_VIEWERS):
                path = "/events" if i % 2 else f"/streams/{'ab'[i % 4 // 2]}/preview.mjpeg"
                stack.enter_context(stalled_viewer(pipeline, path))
            wait_until(lambda: http_status(pipeline.metrics_url + "/events", 10) == 503,
                       30, "the viewer cap")
            since = time.monotonic()
            for _ in range(5):
                assert http_get(pipeline.metrics_url + "/metrics", timeout=10)[0] == 200
            c.wait_labels("a", count=20, since=since, timeout=30)
            threads_during = threads_of(pipeline.pid)
            print(f"supervisor threads: {threads_before} before, {threads_during} with 200 idle "
                  f"and {MAX_VIEWERS} stalled clients")
            assert threads_during <= threads_before + 16  # the HTTP thread pool's cap
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_api_changes_survive_a_sighup_and_a_restart(pipeline, workdir, config):
    c = pipeline.collector
    try:
        reloads = pipeline.log_text().count("reload:")
        reload_at = time.monotonic()
        pipeline.signal(signal.SIGHUP)
        wait_until(lambda: pipeline.log_text().count("reload:") > reloads, 30, "the reload")
        assert [s["id"] for s in api(pipeline, "GET", "/streams")["streams"]] == ["a", "b"]
        assert all(e["state"] != "down" for e in c.events("b", since=reload_at))
        assert pipeline.terminate(timeout=60) == 0
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc
    again = Pipeline(workdir, config)  # the same config file, so the same state file
    try:
        again.collector.wait_labels("b", timeout=60)
        b = api(again, "GET", "/streams/b")
        assert b["uri"].endswith("seed=5")  # the change made through the API
    except AssertionError as exc:
        raise again.with_log(exc) from exc
    finally:
        again.close()
