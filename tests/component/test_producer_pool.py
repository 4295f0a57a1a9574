"""Several streams in one producer process (stream.ingest.group) behind the
supervisor's pool (stream.serve.producer_pool): one stream's trouble (its server
killed, frozen, or its thread stuck inside the source) leaves the other streams of
its process flowing, or costs them one restart of the process, counted and said."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from stream.ingest.producer import TEST_HANG_FILE_ENV
from stream.metrics import PipelineMetrics
from stream.serve.children import RestartPolicy
from stream.serve.producer_pool import ProducerPool
from tests.support.net import wait_until
from tests.support.producers import FAST

H, W = 64, 64


class Pool:
    """A ProducerPool driven like the supervisor drives it: polled, its reports kept."""

    def __init__(self, events, per_process: int) -> None:
        self.metrics = PipelineMetrics()
        self.pool = ProducerPool(events.endpoint, RestartPolicy(initial_s=0.2, max_s=0.5),
                                 logging.INFO, self.metrics, per_process)
        self.reports: list = []

    def add(self, stream_id: str, uri: str, ring) -> None:
        from stream.config import StreamSection

        self.pool.add(StreamSection(id=stream_id, uri=uri), ring, FAST)

    def poll_until(self, condition, timeout: float, what: str):
        def check():
            self.reports += self.pool.poll(FAST)
            return condition()
        return wait_until(check, timeout, what)

    def restarts(self, stream_id: str) -> float:
        wanted = {"process": "producer", "stream": stream_id}
        return sum(s.value for family in self.metrics.process_restarts.collect()
                   for s in family.samples if s.name.endswith("_total") and s.labels == wanted)


@pytest.fixture
def pool(events, tmp_path, monkeypatch):
    # children name their metric files by role, in the multiprocess folder (as in a pipeline)
    (tmp_path / "metrics").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    made: list[Pool] = []

    def make(per_process: int = 16) -> Pool:
        made.append(Pool(events, per_process))
        return made[-1]

    yield make
    for p in made:
        p.pool.stop(time.monotonic() + 2.0)


def flowing(*rings, more_than: dict | None = None):
    """All rings got frames beyond `more_than` (ring -> count)."""
    return lambda: all(r.written > (more_than or {}).get(r.name, 0) for r in rings)


def snapshot(*rings) -> dict:
    return {r.name: r.written for r in rings}


@pytest.mark.rtsp
def test_a_killed_server_reconnects_its_stream_while_the_others_of_its_process_flow(
    rtsp_server, make_ring, events, pool
):
    first, second = rtsp_server(), rtsp_server()
    rings = {name: make_ring(16, H, W) for name in ("first", "second", "synthetic")}
    running = pool()
    running.add("first", first.url(), rings["first"])
    running.add("second", second.url(), rings["second"])
    running.add("synthetic", "synthetic://pattern?fps=25", rings["synthetic"])
    assert running.pool.process_count == 1  # one process decodes all three
    for name in rings:
        events.wait_for(name, "up", timeout=30)

    first.kill()
    lost = events.wait_for("first", "reconnecting", timeout=FAST.stall_timeout_s + 10)
    assert "connection lost" in lost["detail"] or "refused" in lost["detail"]
    others = snapshot(rings["second"], rings["synthetic"])
    running.poll_until(flowing(rings["second"], rings["synthetic"], more_than=others), 15,
                       "the other streams' frames while the first server is down")
    first.start()
    events.wait_for("first", "up", timeout=30, after=events.states("first").index("reconnecting"))
    assert events.states("synthetic") == ["connecting", "up"]
    # the test server plays its 4 s clip once: the second stream may have reconnected
    # at the clip's end, for no other reason
    assert all("source ended the stream" in e["detail"] for e in events.of("second")
               if e["state"] not in ("connecting", "up"))
    assert running.reports == [] and running.restarts("second") == 0


@pytest.mark.rtsp
def test_a_frozen_server_stalls_its_stream_only(rtsp_server, make_ring, events, pool):
    """SIGSTOP freezes one camera with its connection open: the stall watchdog of
    its thread notices; the other stream of the process never stops."""
    frozen = rtsp_server()
    rings = {name: make_ring(16, H, W) for name in ("frozen", "steady")}
    running = pool()
    running.add("frozen", frozen.url(), rings["frozen"])
    running.add("steady", "synthetic://pattern?fps=25", rings["steady"])
    for name in rings:
        events.wait_for(name, "up", timeout=30)
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        stalled = events.wait_for("frozen", "stalled", timeout=FAST.stall_timeout_s + 10)
        assert f"no data for {FAST.stall_timeout_s:g} s" in stalled["detail"]
        before = snapshot(rings["steady"])
        running.poll_until(flowing(rings["steady"], more_than=before), 10,
                           "the steady stream's frames while the other is frozen")
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    assert events.states("steady") == ["connecting", "up"]
    assert running.reports == []


def test_a_stream_stuck_inside_its_source_restarts_its_process_and_the_others_reconnect(
    make_ring, events, pool, tmp_path, monkeypatch
):
    """The stuck thread cannot be stopped, so its process is restarted: every
    stream of it says why (`reconnecting`, naming the stuck stream), each restart is
    counted, and all of them flow again; a stream in another process is untouched."""
    flag = tmp_path / "hang"
    monkeypatch.setenv(TEST_HANG_FILE_ENV, str(flag))  # inherited by the spawned processes
    rings = {name: make_ring(16, H, W) for name in ("a", "b", "c", "elsewhere")}
    running = pool(per_process=3)
    for name, ring in rings.items():
        running.add(name, f"synthetic://pattern?fps=25&seed={ord(name[0])}", ring)
    assert running.pool.process_count == 2
    for name in rings:
        events.wait_for(name, "up", timeout=30)

    flag.write_text("b")
    hung_at = time.monotonic()
    running.poll_until(lambda: len(running.reports) >= 3, FAST.stall_timeout_s + 30,
                       "the stuck stream's process restarted")
    assert not flag.exists()  # consumed: the restarted process runs normally
    reports = {r.stream: r for r in running.reports}
    assert sorted(reports) == ["a", "b", "c"]
    assert all(r.state == "reconnecting" for r in reports.values())
    assert reports["b"].detail.startswith("stuck inside its source")
    assert "stream b hung" in reports["a"].detail and "restarting in" in reports["a"].detail
    after = snapshot(*rings.values())
    running.poll_until(flowing(*rings.values(), more_than=after), 30,
                       "every stream's frames after the restart")
    for name in ("a", "b", "c"):
        assert rings[name].epoch == 2, name  # reconnected: the worker resets its state
        assert running.restarts(name) == 1
    assert rings["elsewhere"].epoch == 1 and running.restarts("elsewhere") == 0
    assert events.states("elsewhere") == ["connecting", "up"]
    assert time.monotonic() - hung_at > FAST.stall_timeout_s  # not before its timeouts


def test_removing_a_stream_stops_only_it_and_the_last_one_stops_the_process(
    make_ring, events, pool
):
    rings = {name: make_ring(16, H, W) for name in ("kept", "removed")}
    running = pool()
    for name, ring in rings.items():
        running.add(name, "synthetic://pattern?fps=25", ring)
    for name in rings:
        events.wait_for(name, "up", timeout=30)
    running.pool.remove("removed")
    seen = [-1]

    def settled() -> bool:  # the removed stream's ring stopped growing
        last, seen[0] = seen[0], rings["removed"].written
        time.sleep(0.3)
        return last == seen[0]

    running.poll_until(settled, 15, "the removed stream to stop")
    before = snapshot(rings["kept"])
    running.poll_until(flowing(rings["kept"], more_than=before), 10, "the kept stream")
    assert running.pool.process_count == 1
    running.pool.remove("kept")
    assert running.pool.process_count == 0
