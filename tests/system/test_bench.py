"""`adafocus-stream bench`: the baseline runs through the same online path, the
ground truth lines up with the decoded frames, the real-time rules reject what
they should, and `bench --quick` runs the real pipeline end to end (no speed is
asserted anywhere: figures come from the bench itself)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from adafocus import AdaFocus, CheckpointError, preset, save_checkpoint
from adafocus.baselines import save_baseline
from adafocus.flops import baseline_costs
from adafocus.loading import load_online
from adafocus.models import FullFrame
from stream.bench import analysis, clip_accuracy, summary
from stream.bench.media import scene_clips
from tests.support import ROOT

NAMES = [str(i) for i in range(10)]


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 128, 128, 3), dtype=np.uint8)


def test_full_frame_baseline_file_serves_every_frame_through_the_online_api(tmp_path):
    torch.manual_seed(0)
    model = FullFrame(preset("tiny"))
    path = save_baseline(tmp_path / "full.pt", model, NAMES, trained=False)

    online = load_online(path, device="cpu")
    results = [online.step(frames(2, seed), ["a", "b"]) for seed in range(3)]

    costs = baseline_costs(model)
    for step in results:
        for r in step:
            assert r.action == "full" and not r.skipped
            assert r.patch == (0.0, 0.0, 1.0, 1.0)  # the whole frame
            assert r.gflops == pytest.approx(costs.full_step)
            assert r.gflops_full == pytest.approx(costs.local_full)
    with pytest.raises(ValueError, match="skip mode 'off'"):
        load_online(path, device="cpu", skip_mode="confidence", budget=0.3)


def test_load_online_still_loads_adafocus_checkpoints_and_names_broken_files(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", AdaFocus(preset("tiny")), NAMES)
    result = load_online(checkpoint, device="cpu", skip_mode="off").step(frames(1), ["a"])[0]
    assert result.patch != (0.0, 0.0, 1.0, 1.0)  # a patch, not the whole frame

    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_online(broken, device="cpu")


def test_sidecar_label_belongs_to_the_decoded_frame_with_that_pts(tmp_path):
    import av

    from adafocus.data.moving_digits import MovingDigitsScene

    clip = scene_clips(tmp_path, count=1, seconds=2.0, log=lambda _: None)[0]
    again = scene_clips(tmp_path, count=1, seconds=2.0, log=pytest.fail)[0]  # cached: no log
    assert again.path == clip.path and (again.labels == clip.labels).all()
    scene = MovingDigitsScene(1000, 128, 128, split="test")
    assert (clip.rendered(3) == scene.frame(3)).all()
    with av.open(str(clip.path)) as container:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert len(decoded) == len(clip.labels) == 50
    for pts, image in decoded[1:-1:7]:
        index = round(pts * clip.fps)
        errors = [np.abs(image.astype(int) - scene.frame(i)).mean() for i in
                  (index - 1, index, index + 1)]
        assert errors[1] == min(errors), f"frame at pts {pts} is not scene frame {index}"
        assert clip.truth_at(pts) == scene.label_at(index)
    assert clip.truth_at(None) == -1 and clip.truth_at(99.0) == -1


def test_clip_accuracy_reads_the_clip_as_the_live_path_does_frame_for_frame(tmp_path):
    clip = scene_clips(tmp_path, count=1, seconds=2.0, log=lambda _: None)[0]
    frames = clip_accuracy.decoded(clip, 20)
    assert frames.shape == (20, 128, 128, 3) and frames.dtype == np.uint8
    for i in (0, 7, 19):  # each decoded frame is nearest its own rendered frame
        errors = [np.abs(frames[i].astype(int) - clip.rendered(j)).mean() for j in range(20)]
        assert int(np.argmin(errors)) == i



def test_clip_accuracy_gap_is_paired_per_clip_with_an_interval_over_the_clips():
    gap = clip_accuracy.paired_gap([0.8, 0.6, 0.9], [0.7, 0.7, 0.7])
    assert gap["per_clip"] == [10.0, -10.0, 20.0]
    assert gap["mean"] == pytest.approx(20 / 3)
    low, high = gap["ci95"]
    assert -10.0 - 1e-9 <= low < gap["mean"] < high <= 20.0 + 1e-9  # within the clips' range
    same = clip_accuracy.paired_gap([0.5, 0.6], [0.4, 0.5])  # every clip 10 points up
    assert same["ci95"] == pytest.approx([10.0, 10.0])
    assert clip_accuracy.paired_gap([0.8, 0.6, 0.9], [0.7, 0.7, 0.7]) == gap  # seeded

def _labels(streams: int = 2, seconds: float = 8.0, fps: float = 25.0, *, gap_every: int = 0,
            lag_growth: float = 0.0, source_rate: float = 1.0) -> dict[str, np.ndarray]:
    """Label rows as a subscriber would record them."""
    rows = []
    n = int(seconds * fps)
    for s in range(streams):
        for seq in range(n):
            if gap_every and seq % gap_every == 0:
                continue
            t_capture = 1000.0 + seq / fps / source_rate
            lag = 0.02 + lag_growth * seq / n
            rows.append((s, seq, seq / fps, t_capture, t_capture + lag, t_capture + lag,
                         3, 3, 0, 0.03, 0.17))
    return analysis.as_arrays(rows)


def test_realtime_rules_pass_a_clean_run_and_name_each_kind_of_failure():
    assert analysis.realtime(_labels(), 2, 8.0, 25.0)["ok"]

    dropped = analysis.realtime(_labels(gap_every=50), 2, 8.0, 25.0)  # 2% of frames missing
    assert not dropped["ok"] and "drop rate" in dropped["reasons"][0]

    lagging = analysis.realtime(_labels(lag_growth=1.0), 2, 8.0, 25.0)  # latency grows by 1 s
    assert not lagging["ok"] and "lag grew" in lagging["reasons"][0]

    starved = analysis.realtime(_labels(source_rate=0.95), 2, 8.0, 25.0)  # decoder at 95% speed
    assert not starved["ok"] and "native rate" in starved["reasons"][0]

    missing = analysis.realtime(_labels(streams=1), 2, 8.0, 25.0)
    assert not missing["ok"] and "published nothing" in missing["reasons"][0]

    trickle = analysis.realtime(_labels(seconds=0.2), 2, 8.0, 25.0)  # 5 labels in 8 s, no gaps
    assert not trickle["ok"] and trickle["drop_rate"] > 0.9


def test_accuracy_is_judged_only_on_sources_of_the_models_aspect():
    assert summary.same_aspect("128x128", (128, 128))
    assert summary.same_aspect("1280x720", (90, 160))
    assert not summary.same_aspect("640x360", (128, 128))  # the scene comes back squashed


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_quick_runs_the_real_pipeline_and_writes_json_markdown_and_plots(tmp_path):
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", AdaFocus(preset("tiny")), NAMES)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stream.cli", "bench", "--quick", "--presets", "tiny",
               "--max-streams", "1", "--window", "2", "--warmup", "0.5", "--clips", "1",
               "--clip-seconds", "20", "--checkpoint", str(checkpoint),
               "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((out / "bench.json").read_text())
    names = [v["name"] for v in report["variants"]]
    assert names == ["decode_ceiling", "tiny/full_frame", "tiny/adafocus", "tiny/adafocus_skip"]
    ceiling, *models = report["variants"]
    assert ceiling["probes"][0]["streams"] == 1 and ceiling["probes"][0]["frames"] > 0
    for variant in models:
        probe = variant["at_load"]
        assert probe["streams"] == 1 and "error" not in probe, probe
        assert probe["frames"] > 0
        assert probe["labels_judged"] == probe["frames"]  # every label matched to the truth
        assert set(probe["latency_ms"]) == {"p50", "p95", "p99"}
        assert set(probe["cpu_ms_per_frame"]) == {"decode", "ring", "model", "publish", "total"}
        assert probe["worker"]["steps"] > 0
    skip = report["variants"][3]["at_load"]
    assert skip["skip_rate"] > 0  # the calibrated thresholds really skip frames
    assert report["variants"][2]["at_load"]["compute_saved"] > 0.5  # patch << whole frame

    table = (out / "bench.md").read_text()
    assert "| source | variant | real-time 25 fps streams | % of decode ceiling |" in table
    assert all(f"`{name}`" in table for name in names)
    for picture in ("cost_vs_streams.png", "capacity.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ingest_bench_runs_every_layout_with_each_decode_thread_setting(tmp_path):
    out = tmp_path / "ingest.json"
    command = [sys.executable, "-m", "stream.bench.ingest", "--frames", "40", "--sources",
               "160x120", "--frame-size", "64x64", "--decode-threads", "1", "0",
               "--media-dir", str(tmp_path / "media"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["throughput"]
    assert [(r["streams"], r["streams_per_process"], r["decode_threads"]) for r in rows] == [
        (1, 1, 1), (1, 1, 0), (4, 1, 1), (4, 1, 0), (16, 16, 1), (16, 16, 0)]
    for row in rows:  # every frame of every stream went through a ring, and no producer failed
        assert row["frames"] == 40 * row["streams"] and row["overwritten"] == 0, row
        assert set(row["exit_codes"]) == {0}

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ramp_mode_finds_2_and_4_streams_real_time_in_one_pipeline_per_search(tmp_path):
    """--ramp: the search over 1, 2 and 4 streams runs in ONE pipeline per variant
    (streams added by reloads; the fixed-load probe has a pipeline of its own),
    finds them real time, and the model's capacity is reported as a share of the
    decode ceiling measured in the same run."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stream.cli", "bench", "--ramp", "--presets", "tiny",
               "--methods", "adafocus_skip", "--max-streams", "4", "--window", "3",
               "--warmup", "1", "--clips", "2", "--clip-seconds", "60", "--budget", "240",
               "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=290)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((out / "bench.json").read_text())
    assert report["settings"]["ramp"] is True
    for row in report["variants"]:
        by_count = {p["streams"]: p for p in row["probes"]}
        assert by_count[2]["ok"] and by_count[4]["ok"], (row["name"], by_count)
        searched = [p for p in row["probes"] if p != row["at_load"]]  # at load: its own
        assert len({p["pipeline_pid"] for p in searched}) == 1, row["name"]
    ceiling, skip = report["variants"]
    assert ceiling["name"] == "decode_ceiling" and ceiling["capacity"] == 4
    assert skip["ceiling_share"] == skip["capacity"] / ceiling["capacity"]


def test_bench_refuses_a_missing_checkpoint_or_device_with_one_clear_line(tmp_path):
    base = [sys.executable, "-m", "stream.cli", "bench", "--cache-dir", str(tmp_path),
            "--out", str(tmp_path / "out")]
    missing = subprocess.run([*base, "--checkpoint", str(tmp_path / "nope.pt")], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "--checkpoint" in missing.stderr and "nope.pt" in missing.stderr
    assert "Traceback" not in missing.stderr
    if not torch.cuda.is_available():
        no_gpu = subprocess.run([*base, "--device", "cuda"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert no_gpu.returncode == 2 and "CUDA is not available" in no_gpu.stderr


def test_python_m_stream_bench_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "stream.bench", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--quick" in done.stdout
