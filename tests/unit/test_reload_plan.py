"""What a SIGHUP changes: only the streams whose settings changed restart."""

from __future__ import annotations

from stream.config import IngestSection, StreamSection
from stream.serve.reload import plan_reload


def stream(sid: str, seed: int = 0, **options) -> StreamSection:
    return StreamSection(id=sid, uri=f"synthetic://pattern?seed={seed}", **options)


RUNNING = {"a": stream("a"), "b": stream("b"), "c": stream("c")}


def test_unchanged_streams_are_left_alone_and_changed_ones_restart() -> None:
    wanted = {"a": stream("a"), "b": stream("b", seed=9), "d": stream("d")}
    plan = plan_reload(RUNNING, wanted, IngestSection(), IngestSection())
    assert [s.id for s in plan.added] == ["d"]
    assert plan.removed == ["c"]
    assert [s.id for s in plan.restarted] == ["b"] and plan.rebuilt == []
    assert plan.unchanged == 1


def test_new_ingest_settings_restart_every_stream_and_a_new_ring_size_rebuilds_them() -> None:
    slower = IngestSection(stall_timeout_s=9.0)
    plan = plan_reload(RUNNING, RUNNING, IngestSection(), slower)
    assert [s.id for s in plan.restarted] == ["a", "b", "c"] and plan.unchanged == 0
    bigger = IngestSection(ring_slots=16)
    plan = plan_reload(RUNNING, RUNNING, IngestSection(), bigger)
    assert plan.restarted == [] and [s.id for s in plan.rebuilt] == ["a", "b", "c"]
