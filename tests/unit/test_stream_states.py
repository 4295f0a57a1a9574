"""The one owner of every stream's state: what producers report and whether the
worker runs, combined without either overwriting the other."""

from __future__ import annotations

import pytest

from stream.serve.states import WORKER_BACK_DETAIL, WORKER_DOWN_DETAIL, StreamStates


class Published(list):
    def __call__(self, stream: str, state: str, detail: str, t: float) -> None:
        self.append((stream, state, detail))


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def states(published: Published) -> StreamStates:
    states = StreamStates(published, clock=lambda: 100.0)
    for sid in ("good", "dead"):
        states.add(sid, at=50.0)
    states.source("good", "up", "h264", t=60.0)
    states.source("dead", "down", "not found (404)", t=61.0)
    published.clear()
    return states


def test_a_new_stream_is_connecting_without_an_announcement(published: Published) -> None:
    states = StreamStates(published)
    states.add("cam")
    assert states.snapshot()["cam"].state == "connecting"
    assert published == []


def test_a_worker_restart_stalls_live_streams_and_never_revives_dead_ones(
    states: StreamStates, published: Published
) -> None:
    states.inference(available=False)
    assert published == [("good", "stalled", WORKER_DOWN_DETAIL)]
    states.inference(available=True)
    assert published[1:] == [("good", "up", WORKER_BACK_DETAIL)]
    assert states.snapshot()["dead"].state == "down"
    assert states.snapshot()["dead"].detail == "not found (404)"


def test_a_source_that_comes_up_while_the_worker_is_down_waits_for_it(
    states: StreamStates, published: Published
) -> None:
    states.inference(available=False)
    states.source("dead", "up", "fixed", t=70.0)
    assert states.snapshot()["dead"].state == "stalled"
    states.inference(available=True)
    assert states.snapshot()["dead"].state == "up"


def test_repeating_the_same_state_publishes_nothing(
    states: StreamStates, published: Published
) -> None:
    states.source("good", "up", "h264", t=80.0)
    assert published == []


def test_a_removed_stream_says_down_once_and_late_reports_cannot_bring_it_back(
    states: StreamStates, published: Published
) -> None:
    states.remove("good", "removed from the config")
    assert published == [("good", "down", "removed from the config")]
    states.source("good", "up", "late message from the old producer", t=99.0)
    assert "good" not in states.snapshot() and "good" not in states.configured()


def test_what_a_producer_said_before_its_stream_was_added_is_kept(published: Published) -> None:
    states = StreamStates(published, clock=lambda: 10.0)
    states.source("early", "down", "not a video", t=12.0)  # raced ahead of its `add`
    states.add("early", at=11.0)
    assert states.snapshot()["early"].state == "down"
    states.source("stale", "up", "", t=5.0)  # from before the stream was added: ignored
    states.add("stale", at=11.0)
    assert states.snapshot()["stale"].state == "connecting"


def test_stop_says_down_for_live_streams_only(states: StreamStates, published: Published) -> None:
    states.stop("pipeline stopped")
    assert published == [("good", "down", "pipeline stopped")]
