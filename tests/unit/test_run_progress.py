"""A long training run says where it stands: the share of all its steps done, the time
spent and the time left at this process's pace, when a stage starts and every minute;
a resumed run counts its finished stages as done but not towards its pace."""

from __future__ import annotations

from adafocus.train.progress import RunProgress, duration_text

PLAN = [("baseline.glance", 100), ("v1.warmup", 200), ("v2.train", 100)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_run_line_shows_share_done_elapsed_and_time_left_at_stages_and_each_minute():
    clock, lines = Clock(), []
    progress = RunProgress(PLAN, [], lines.append, every_s=60, clock=clock)
    progress.begin("baseline.glance", 0)
    for _ in range(100):
        clock.now += 0.5  # half a second a step
        progress.advance()
    progress.end("baseline.glance")
    progress.begin("v1.warmup", 0)
    assert lines == [
        "[1/3] baseline.glance: 100 steps; run 0% (0/400 steps), 0 s elapsed",
        "[2/3] v1.warmup: 200 steps; run 25% (100/400 steps), 50 s elapsed, "
        "about 2 min 30 s left"]
    for _ in range(120):  # a minute after the stage's line, the next one
        clock.now += 0.5
        progress.advance()
    assert lines[2:] == ["v1.warmup step 120/200; run 55% (220/400 steps), 1 min 50 s "
                         "elapsed, about 1 min 30 s left"]


def test_a_resumed_run_counts_finished_stages_but_paces_on_its_own_steps():
    clock, lines = Clock(), []
    progress = RunProgress(PLAN, ["baseline.glance"], lines.append, every_s=1e9, clock=clock)
    progress.begin("v1.warmup", 150)
    assert "resuming at 150" in lines[-1] and "run 62% (250/400 steps)" in lines[-1]
    assert "left" not in lines[-1]  # no pace measured yet
    for _ in range(10):
        clock.now += 2.0
        progress.advance()
    assert progress.line() == "run 65% (260/400 steps), 20 s elapsed, about 4 min 40 s left"


def test_durations_read_like_a_person_writes_them():
    assert [duration_text(s) for s in (7, 190, 7500)] == ["7 s", "3 min 10 s", "2 h 05 min"]
