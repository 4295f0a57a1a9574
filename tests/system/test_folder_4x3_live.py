"""A 4:3 folder trains a 4:3 model, and a real pipeline serves it live at 4:3 from a
4:3 file: frames are neither stretched nor letterboxed on the way (the file's own
size is the model's), and the live labels are, frame for frame, what the model
gives on the frames the training loader reads from that file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adafocus import OnlineAdaFocus
from adafocus.checkpoint import load_checkpoint
from adafocus.data.video_folder import VideoFolder
from adafocus.train import parse_train_config, train
from tests.support.folders import digits_folder, folder_run
from tests.support.pipeline import Pipeline, pipeline_config

pytestmark = pytest.mark.slow


def test_a_4x3_folder_trains_a_4x3_model_that_runs_live_at_4x3(tmp_path):
    folder = digits_folder(tmp_path / "videos", clips=4, seconds=3.0, size=(48, 64))
    torch.set_num_threads(1)
    result = train(parse_train_config(folder_run(folder, tmp_path / "m43.pt")),
                   progress=False, log=lambda _: None)
    model = load_checkpoint(result.checkpoint)
    assert model.config.frame_size == (48, 64) and model.config.glance_size == (12, 16)

    clip = folder / "clip-000.mp4"
    config = pipeline_config(str(result.checkpoint), [{"id": "clip", "uri": str(clip),
                                                       "lossless": True}])
    pipeline = Pipeline(tmp_path, config)
    c = pipeline.collector
    try:
        up = c.wait_event("clip", ("up",), timeout=60)
        assert up["detail"] == "h264 64x48 -> 64x48"  # 4:3 in, 4:3 model: no bars
        c.wait_event("clip", ("ended",), timeout=60)
        assert "64x48 frames" in pipeline.log_text()
        labels = c.wait_labels("clip", count=25, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- pipeline log ---\n{pipeline.log_text()[-4000:]}") from exc
    finally:
        pipeline.close()

    # the frames the worker saw without a gap (a loaded machine may drop some later)
    seqs = [m["seq"] for m in labels]
    run = next((i for i, (a, b) in enumerate(zip(seqs, seqs[1:], strict=False)) if b != a + 1),
               len(seqs) - 1) + 1
    assert run >= 25, seqs
    live = labels[:run]
    frames = VideoFolder(folder).frames_at(0, [m["pts"] for m in live], 48, 64)
    offline = OnlineAdaFocus.from_checkpoint(result.checkpoint, device="cpu", skip_mode="off")
    expected = [offline.step(frame[None], ["clip"])[0] for frame in frames]
    assert [m["class_id"] for m in live] == [r.class_id for r in expected]
    assert np.allclose([m["score"] for m in live], [r.score for r in expected], atol=1e-4)
    assert [tuple(m["patch"]) for m in live] == [tuple(r.patch) for r in expected]
