"""The online runtime answers the recorded streams exactly as the runtime that
recorded them (tests/support/recorded.py): same class, action, patch and GFLOPs
for every result, scores equal up to float rounding. A rewrite of the per-stream
state or of the skip decision that changes a single answer fails here."""

from __future__ import annotations

import json

import pytest

from tests.support.recorded import RECORDING, models, replay


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(RECORDING.read_text())


@pytest.fixture(scope="module", params=["eager", "padded"])
def replayed(request) -> dict:
    """Replayed as the CPU runs it, and padded to the batch buckets as CUDA graphs
    run it (adafocus.graphs): padding rows must change no stream's answer."""
    runtime = {"pad_batches": request.param == "padded"}
    return {name: replay(model) for name, model in models(**runtime).items()}


@pytest.mark.parametrize("name", ["adafocus_skip", "adafocus_glance", "adafocus", "full_frame"])
def test_every_recorded_result_is_reproduced(name, recorded, replayed):
    expected, got = recorded[name], replayed[name]
    assert len(got) == len(expected)
    for step, (want_step, got_step) in enumerate(zip(expected, got, strict=True)):
        assert [r["stream"] for r in got_step] == [r["stream"] for r in want_step]
        for want, have in zip(want_step, got_step, strict=True):
            where = f"{name} step {step} stream {want['stream']}"
            for key in ("class_id", "label", "action", "skipped"):
                assert have[key] == want[key], f"{where}: {key}"
            assert have["gflops"] == pytest.approx(want["gflops"], rel=1e-9), where
            assert have["gflops_full"] == pytest.approx(want["gflops_full"], rel=1e-9), where
            if want["patch"] is None:
                assert have["patch"] is None, where
            else:
                assert have["patch"] == pytest.approx(want["patch"], abs=1e-5), where
            assert have["score"] == pytest.approx(want["score"], abs=1e-4), where
            assert [c for c, _ in have["topk"]] == [c for c, _ in want["topk"]], where
