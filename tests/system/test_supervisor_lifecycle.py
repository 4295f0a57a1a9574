"""The supervisor's life with a real pipeline of synthetic cameras: config reload
on SIGHUP, a hung inference worker, restarted producers and their metric files,
and the final SIGTERM (tests run in file order on one pipeline; the last one
stops it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stream.infer.worker import TEST_HANG_FILE_ENV
from tests.support.net import wait_until
from tests.support.pipeline import (
    Pipeline,
    assert_seq_increasing,
    metric,
    pipeline_config,
    tiny_checkpoint,
)

pytestmark = pytest.mark.slow

HANG_TIMEOUT_S = 3.0


def camera(stream_id: str, seed: int) -> dict[str, str]:
    return {"id": stream_id, "uri": f"synthetic://pattern?fps=10&seed={seed}"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("lifecycle")


@pytest.fixture(scope="module")
def checkpoint(workdir):
    return tiny_checkpoint(workdir)


@pytest.fixture(scope="module")
def pipeline(workdir, checkpoint):
    config = pipeline_config(
        checkpoint,
        [camera("a", 1), camera("b", 2)],
        streams_per_process=1,  # the tests kill one stream's producer process
        worker={"hang_timeout_s": HANG_TIMEOUT_S},
    )
    running = Pipeline(workdir, config, env={TEST_HANG_FILE_ENV: str(workdir / "hang")})
    try:
        running.collector.wait_labels("a", timeout=60)
        running.collector.wait_labels("b", timeout=60)
    except AssertionError as exc:
        running.close()
        raise AssertionError(f"{exc}\n{running.log_text()[-4000:]}") from exc
    yield running
    running.close()



def test_sighup_adds_and_removes_streams_without_touching_the_others(pipeline):
    c = pipeline.collector
    try:
        pipeline.write_config({**pipeline.base_config, "streams": [camera("b", 2), camera("c", 3)]})
        reload_at = time.monotonic()
        pipeline.signal(signal.SIGHUP)

        gone = c.wait_event("a", ("down",), since=reload_at, detail="removed", timeout=30)
        c.wait_labels("c", count=3, since=reload_at, timeout=30)
        gone_at = time.monotonic()  # once "down" was out, a's ring was already unlinked
        c.wait_labels("b", count=5, since=gone_at, timeout=30)
        assert not c.labels("a", since=gone_at), "labels from a removed stream"
        assert gone["detail"] == "removed from the config"
        assert len(pipeline.producer_pids("b")) == 1, "reload restarted an unchanged stream"
        b_seqs = [m["seq"] for m in c.labels("b", since=reload_at)]
        assert b_seqs and b_seqs == sorted(b_seqs), "b was disturbed by the reload"
        assert len(pipeline.rings()) == 2, f"a's ring not unlinked: {pipeline.rings()}"
        status, health = pipeline.healthz()
        assert sorted(health["streams"]) == ["b", "c"]

        # A broken config on reload is reported and the running one stays.
        pipeline.write_config({**pipeline.base_config, "streams": [{"id": "b", "urx": "x"}]})
        bad_at = time.monotonic()
        pipeline.signal(signal.SIGHUP)
        c.wait_labels("b", count=10, since=bad_at, timeout=30)
        c.wait_labels("c", count=10, since=bad_at, timeout=30)
        failed = [line for line in pipeline.log_text().splitlines() if "reload failed" in line]
        assert failed and "keeping the running config" in failed[0]
        assert "streams[0].urx: unknown key" in failed[0]
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_hung_worker_is_detected_restarted_and_its_streams_resume(pipeline, workdir):
    c = pipeline.collector
    try:
        assert len(pipeline.worker_pids()) == 1
        (workdir / "hang").touch()  # the worker consumes it and stops ticking
        hung_at = time.monotonic()
        stalled = c.wait_event("b", ("stalled",), since=hung_at, timeout=HANG_TIMEOUT_S + 10)
        assert stalled["detail"] == "inference worker restarting"
        assert "has not ticked for" in pipeline.log_text()
        c.wait_event("c", ("up",), since=hung_at, detail="inference resumed", timeout=60)
        for stream in ("b", "c"):
            resumed = c.wait_labels(stream, count=5, since=time.monotonic(), timeout=30)
            assert_seq_increasing(c.labels(stream), stream)
            assert resumed
        assert len(pipeline.worker_pids()) == 2
        assert not (workdir / "hang").exists()
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def metric_files(pipeline: Pipeline) -> set[str]:
    return {path.name for path in pipeline.metrics_dir.glob("*.db")}


def wait_new_producer(pipeline: Pipeline, stream: str, known: int) -> int:
    """The pid of the producer the supervisor starts after the `known` ones so far."""
    wait_until(lambda: len(pipeline.producer_pids(stream)) > known, 30,
               f"a new producer for {stream}")
    return pipeline.producer_pids(stream)[-1]


def test_restarted_children_reuse_their_metric_files_and_counters_keep_counting(pipeline):
    """Children name their metric files by role (worker, producer slot), not PID:
    restarts leave the directory as it was, a restarted producer continues its
    counter, and its replacement starts only after the old process is reaped
    (two live processes sharing files would corrupt them)."""
    c = pipeline.collector
    try:
        for stream in ("b", "c"):  # the current producers (and their files) are running
            c.wait_labels(stream, count=2, since=time.monotonic(), timeout=15)
        before = metric_files(pipeline)
        # The worker restarted by the previous test and stream a, removed by the one
        # before it, left no files: only the supervisor's (by PID), the worker's and
        # one producer slot per running stream are there.
        owners = {name.rsplit("_", 1)[1].removesuffix(".db") for name in before}
        assert owners == {str(pipeline.pid), "worker", "producer-0", "producer-1"}, before

        decoded = metric(pipeline.metrics(), "adafocus_frames_decoded_total", stream="b")
        assert decoded > 0
        for _ in range(2):  # crashes: restarted after the backoff
            known = len(pipeline.producer_pids("b"))
            os.kill(pipeline.producer_pids("b")[-1], signal.SIGKILL)
            wait_new_producer(pipeline, "b", known)
            c.wait_labels("b", count=3, since=time.monotonic(), timeout=15)
            now = metric(pipeline.metrics(), "adafocus_frames_decoded_total", stream="b")
            assert now > decoded, f"frames_decoded_total went from {decoded} to {now}"
            decoded = now

        # A reload restarts changed stream c while its old producer is frozen: it
        # cannot die before the supervisor's SIGKILL (2 s after SIGTERM), so a
        # replacement started any earlier would overlap it.
        old = pipeline.producer_pids("c")[-1]
        known = len(pipeline.producer_pids("c"))
        os.kill(old, signal.SIGSTOP)
        pipeline.write_config({**pipeline.base_config, "streams": [camera("b", 2), camera("c", 4)]})
        pipeline.signal(signal.SIGHUP)
        wait_new_producer(pipeline, "c", known)
        assert not Path(f"/proc/{old}").exists(), "replacement started before the old one died"
        for stream in ("b", "c"):
            c.wait_labels(stream, count=3, since=time.monotonic(), timeout=15)
        assert metric_files(pipeline) == before
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc


def test_sigterm_stops_everything_with_status_0_final_events_and_no_shared_memory(pipeline):
    c = pipeline.collector
    try:
        stop_at = time.monotonic()
        assert pipeline.terminate(timeout=60) == 0
        for stream in ("b", "c"):
            wait_until(lambda stream=stream: c.events(stream, since=stop_at)[-1:]
                       and c.events(stream, since=stop_at)[-1]["state"] == "down", 10,
                       f"{stream}'s final down")
        assert pipeline.rings() == []
        assert "Traceback" not in pipeline.log_text()
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc
