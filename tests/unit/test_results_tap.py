"""The results tap: what the API knows of each stream's labels, and a fan-out to
the live page that costs nothing without watchers and coalesces bursts."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from adafocus.interface import StepResult
from stream.serve.api.preview import render
from stream.serve.api.tap import ResultsTap, Tally
from stream.wire.messages import event_frames, label_frames

pytestmark = pytest.mark.timeout(30)


def label(stream: str, seq: int, patch: tuple | None, gflops: float = 0.01) -> list[bytes]:
    result = StepResult(3, "3", 0.75, [("3", 0.75)], patch, patch is None, "full",
                        gflops, 0.1)
    return label_frames(stream, seq, None, 0.0, result)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_tally_keeps_the_last_label_the_last_patch_the_rate_and_compute_saved() -> None:
    clock = Clock()
    tap = ResultsTap(clock)
    for seq in range(25):  # 20 labels a second
        tap(label("a", seq, (0.1, 0.2, 0.3, 0.4) if seq < 24 else None))
        clock.now += 0.05
    tally = tap.tally("a")
    assert (tally.label, tally.score, tally.labels) == ("3", 0.75, 25)
    assert tally.patch == [0.1, 0.2, 0.3, 0.4]  # a carried-over label keeps the last patch
    assert tally.fps(clock.now) == pytest.approx(20, rel=0.01)
    assert tally.compute_saved() == pytest.approx(0.9)
    assert tally.fps(clock.now + 10) == 0.0  # quiet for long: no rate
    tap.keep_only(set())
    assert tap.tally("a") is None


def test_without_watchers_nothing_reaches_the_event_loop_and_bursts_are_coalesced() -> None:
    tap = ResultsTap()

    async def scenario() -> tuple[int, int, set[str]]:
        loop = asyncio.get_running_loop()
        calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args: object) -> object:
            nonlocal calls
            calls += 1
            return original(*args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        for seq in range(100):
            tap(label("a", seq, None))
        unwatched = calls
        watch = tap.watch()
        for seq in range(100, 1100):
            tap(label("a", seq, None))
        tap(event_frames("b", "up", "", 1.0))
        changed = await watch.changed(5.0)
        tap.unwatch(watch)
        return unwatched, calls, changed

    unwatched, calls, changed = asyncio.run(scenario())
    assert unwatched == 0
    assert calls == 1  # 1001 messages, one wake-up of the loop
    assert changed == {"a", "b"}


def test_the_preview_draws_the_patch_box_and_the_label() -> None:
    frame = np.full((64, 64, 3), 40, np.uint8)
    plain = np.asarray(Image.open(io.BytesIO(render(frame, None))))
    boxed = np.asarray(Image.open(io.BytesIO(render(
        frame, Tally(label="7", score=0.9, patch=[0.5, 0.5, 1.0, 1.0])))))
    assert plain.shape == boxed.shape == (384, 384, 3)  # enlarged to be seen
    lower_right = boxed[192:, 192:].astype(int)
    assert (np.abs(lower_right - [255, 196, 0]).sum(axis=2) < 90).sum() > 500
    assert (np.abs(plain[192:, 192:].astype(int) - [255, 196, 0]).sum(axis=2) < 90).sum() == 0
