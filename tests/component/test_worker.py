"""The inference worker's tick, on real frame rings and a real (tiny, untrained)
OnlineAdaFocus: which frame it takes, what it publishes, what it counts, and
when it forgets a stream's recurrent state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.infer.worker import InferenceWorker, WorkerStream
from stream.metrics import PipelineMetrics
from stream.wire.messages import decode

SIZE = (64, 64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from adafocus import AdaFocus, preset, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "tiny64.pt"
    config = preset("tiny", frame_size=SIZE, patch_size=32)
    return save_checkpoint(path, AdaFocus(config), [f"class-{i}" for i in range(10)])


@pytest.fixture
def model(checkpoint):
    from adafocus import OnlineAdaFocus

    return OnlineAdaFocus.from_checkpoint(checkpoint, device="cpu", skip_mode="off")


class Published:
    """Collects what the worker sends, decoded with the subscribers' own validator."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, frames: list[bytes]) -> bool:
        kind, payload = decode(frames)
        assert kind == "label"
        self.messages.append(payload)
        return True


def make_worker(model, max_batch: int = 4) -> tuple[InferenceWorker, Published, PipelineMetrics]:
    published, metrics = Published(), PipelineMetrics()
    return InferenceWorker(model, max_batch, published, metrics), published, metrics


def counter(metric, **labels: str) -> float | None:
    """The counter's value, None when the series does not exist at all."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == labels:
                return sample.value
    return None


def frame(value: int) -> np.ndarray:
    return np.random.default_rng(value).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def test_realtime_stream_catches_up_on_the_newest_frames_and_older_ones_are_counted_stale(
        model, make_ring):
    ring = make_ring(8, *SIZE)
    worker, published, metrics = make_worker(model)
    worker.add(WorkerStream("cam", ring.name))
    for seq in range(5):
        ring.write(frame(seq), seq, pts=seq / 25, t_capture=100.0 + seq, truth=3)

    assert worker.tick() == 1 and worker.backlog  # the oldest of the two newest, then
    assert worker.tick() == 1 and not worker.backlog  # the newest, at once
    assert worker.tick() == 0  # nothing new: no duplicate label
    assert [m["seq"] for m in published.messages] == [3, 4]
    message = published.messages[-1]
    assert message["pts"] == pytest.approx(4 / 25)
    assert message["truth"] == "class-3" and message["label"].startswith("class-")
    assert counter(metrics.frames_dropped, stream="cam", reason="stale") == 3
    worker.flush()
    assert counter(metrics.frames_processed, stream="cam") == 2
    assert counter(metrics.gflops_full, stream="cam") == pytest.approx(
        sum(m["gflops_full"] for m in published.messages))
    worker.close()


def test_lossless_stream_gets_every_frame_in_order(model, make_ring):
    ring = make_ring(8, *SIZE)
    worker, published, metrics = make_worker(model)
    worker.add(WorkerStream("file", ring.name, lossless=True))
    for seq in range(3):
        ring.write(frame(seq), seq, pts=None, t_capture=1.0)

    assert [worker.tick() for _ in range(4)] == [1, 1, 1, 0]
    assert [m["seq"] for m in published.messages] == [0, 1, 2]
    assert all("truth" not in m and m["pts"] is None for m in published.messages)
    assert counter(metrics.frames_dropped, stream="file", reason="stale") == 0
    assert counter(metrics.frames_skipped, stream="file") == 0
    worker.close()


def test_streams_beyond_max_batch_are_served_in_turn(model, make_ring):
    worker, published, _ = make_worker(model, max_batch=2)
    rings = [make_ring(4, *SIZE) for _ in range(3)]
    for i, ring in enumerate(rings):
        worker.add(WorkerStream(f"s{i}", ring.name))
        ring.write(frame(i), 0, pts=None, t_capture=1.0)

    assert worker.tick() == 2
    assert worker.tick() == 1
    assert sorted(m["stream"] for m in published.messages) == ["s0", "s1", "s2"]
    worker.close()


def test_new_ring_epoch_resets_the_streams_recurrent_state(model, make_ring):
    """After a reconnect (new epoch) the stream's label depends on the new frames
    only, exactly as for a stream seen for the first time; without a new epoch
    the history still counts (so the comparison can fail)."""
    worker, _, _ = make_worker(model)
    reconnected, continued = make_ring(4, *SIZE), make_ring(4, *SIZE)
    worker.add(WorkerStream("reconnected", reconnected.name))
    worker.add(WorkerStream("continued", continued.name))
    for ring in (reconnected, continued):
        ring.write(frame(1), 0, pts=None, t_capture=1.0)
    assert worker.tick() == 2

    reconnected.new_epoch()
    for ring in (reconnected, continued):
        ring.write(frame(2), 1, pts=None, t_capture=2.0)
    assert worker.tick() == 2

    model.step(frame(2)[None], ["fresh"])
    fresh = model.logits("fresh")
    assert np.allclose(model.logits("reconnected"), fresh, atol=1e-5)
    assert not np.allclose(model.logits("continued"), fresh, atol=1e-5)
    worker.close()


def test_removed_stream_releases_its_model_state(model, make_ring):
    ring = make_ring(4, *SIZE)
    worker, _, _ = make_worker(model)
    worker.add(WorkerStream("gone", ring.name))
    ring.write(frame(0), 0, pts=None, t_capture=1.0)
    worker.tick()
    assert "gone" in model.streams

    worker.remove("gone")
    ring.write(frame(1), 1, pts=None, t_capture=2.0)
    assert worker.tick() == 0
    assert "gone" not in model.streams and worker.stream_ids == []


def test_each_tick_charges_the_full_frame_time_of_its_batch(model, make_ring):
    published, metrics = Published(), PipelineMetrics()
    worker = InferenceWorker(model, 4, published, metrics, full_frame_seconds=lambda b: 0.01 * b)
    rings = [make_ring(4, *SIZE) for _ in range(3)]
    for i, ring in enumerate(rings):
        worker.add(WorkerStream(f"s{i}", ring.name))
        ring.write(frame(i), 0, pts=None, t_capture=1.0)
    assert worker.tick() == 3
    rings[0].write(frame(9), 1, pts=None, t_capture=2.0)
    assert worker.tick() == 1
    assert counter(metrics.full_frame_seconds) == pytest.approx(0.04)
    worker.close()


def test_per_frame_counters_are_written_at_flushes_and_none_is_lost(model, make_ring):
    """Counters are summed between flushes (every flush_s, on flush(), on remove), so
    a scrape between two flushes sees the older total, never a wrong one."""
    published, metrics = Published(), PipelineMetrics()
    worker = InferenceWorker(model, 4, published, metrics, flush_s=3600.0)
    ring = make_ring(8, *SIZE)
    worker.add(WorkerStream("cam", ring.name))
    for seq in range(3):
        ring.write(frame(seq), seq, pts=None, t_capture=1.0)
        assert worker.tick() == 1
    assert counter(metrics.frames_processed, stream="cam") == 1  # the first tick flushed
    worker.flush()
    assert counter(metrics.frames_processed, stream="cam") == 3
    ring.write(frame(3), 3, pts=None, t_capture=1.0)
    assert worker.tick() == 1
    worker.remove("cam")
    assert counter(metrics.frames_processed, stream="cam") == 4
    total = sum(m["gflops"] for m in published.messages)
    assert counter(metrics.gflops, stream="cam") == pytest.approx(total)


def test_worker_learns_the_shortest_frame_interval_of_its_live_streams(model, make_ring):
    slow, fast = make_ring(8, *SIZE), make_ring(8, *SIZE)
    worker, _, _ = make_worker(model)
    worker.add(WorkerStream("slow", slow.name))
    worker.add(WorkerStream("fast", fast.name))
    assert worker.frame_period == float("inf")  # nothing seen yet
    for seq in range(2):
        slow.write(frame(seq), seq, pts=seq / 25, t_capture=100.0, truth=0)
        worker.tick()
    assert worker.frame_period == pytest.approx(1 / 25)
    for seq in range(4):  # 60 fps: frame 0, then three at once (the skipped one counts)
        fast.write(frame(seq), seq, pts=seq / 60, t_capture=100.0, truth=0)
        if seq in (0, 3):
            worker.tick()
    assert worker.frame_period == pytest.approx(1 / 60)
    assert worker.dropped == 1  # the frame skipped in the last tick

    worker.remove("fast")  # the fast stream left: the pacing may wait longer again
    assert worker.frame_period == pytest.approx(1 / 25)


def test_worker_reports_a_backlog_only_when_frames_are_left_it_could_take(model, make_ring):
    live, files = make_ring(8, *SIZE), make_ring(8, *SIZE)
    worker, _, _ = make_worker(model)
    worker.add(WorkerStream("live", live.name))
    worker.add(WorkerStream("file", files.name, lossless=True))
    for seq in range(3):
        live.write(frame(seq), seq, pts=seq / 25, t_capture=100.0, truth=0)
        files.write(frame(seq), seq, pts=seq / 25, t_capture=100.0, truth=0)
    assert worker.tick() == 2 and worker.backlog  # frames of both still unread
    assert worker.tick() == 2 and worker.backlog  # the live one caught up, the file did not
    assert worker.tick() == 1 and not worker.backlog

    crowded, _, _ = make_worker(model, max_batch=1)
    crowded.add(WorkerStream("live", live.name))
    crowded.add(WorkerStream("other", files.name))
    live.write(frame(3), 3, pts=3 / 25, t_capture=100.0, truth=0)
    assert crowded.tick() == 1 and crowded.backlog  # a full batch: the other stream waits
