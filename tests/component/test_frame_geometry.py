"""One frame geometry for training, evaluation and the live pipeline: a picture is
fitted into the model's frame with its aspect ratio kept (letterbox), and a live
file source gives exactly the pixels the training folder loader gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from adafocus.data.video_folder import VideoFolder
from adafocus.geometry import common_size, place, scaled_glance
from stream.ingest.sources import open_source
from stream.ingest.uri import parse_source
from tests.support.producers import CLIP_FRAMES, CLIP_SIZE


def test_a_picture_keeps_its_aspect_ratio_inside_the_model_frame():
    wide = place((144, 192), (128, 128))  # 4:3 into a square: bars above and below
    assert (wide.height, wide.width, wide.top, wide.left) == (96, 128, 16, 0)
    tall = place((192, 108), (96, 128))  # portrait phone video into 4:3: bars at the sides
    assert (tall.height, tall.width, tall.top) == (96, 54, 0) and tall.left == 37
    same = place((720, 1280), (90, 160))
    assert same.fills((90, 160)) and not wide.fills((128, 128))


def test_the_native_frame_is_the_commonest_video_size_and_the_glance_keeps_its_ratio():
    assert common_size([(144, 192), (144, 192), (240, 320)]) == (144, 192)
    assert scaled_glance((144, 192), (128, 128), (32, 32)) == (36, 48)  # tiny: a quarter
    assert scaled_glance((144, 192), (224, 224), (224, 224)) == (144, 192)  # paper: whole


def test_live_file_source_and_training_folder_give_the_same_letterboxed_pixels(h264_clip,
                                                                              tmp_path):
    size = (96, 96)  # a square model; the clip is 4:3 (CLIP_SIZE 320x240)
    source = open_source(parse_source(str(h264_clip), {"realtime": False}), *size,
                         open_timeout_s=5, stall_timeout_s=5, stop=threading.Event(),
                         on_decode_error=lambda: None)
    try:
        live = [(f.image.copy(), f.pts) for f in source.frames()]
    finally:
        source.close()
    assert "320x240 -> 96x96 (letterboxed to 96x72)" in source.description
    (tmp_path / "labels.csv").write_text(f"file,label\n{h264_clip},testsrc\n")
    folder = VideoFolder(tmp_path)
    assert (folder.videos[0].width, folder.videos[0].height) == CLIP_SIZE
    trained = folder.frames_at(0, [pts for _, pts in live], *size)
    assert len(live) == CLIP_FRAMES
    for (image, _), expected in zip(live, trained, strict=True):
        assert np.array_equal(image, expected)
    images = np.stack([image for image, _ in live])
    assert not images[:, :12].any() and not images[:, 84:].any()  # black bars, 12 px each
    assert images[:, 12:84].mean() > 20  # the picture itself, unstretched, between them


@pytest.mark.parametrize("source", [(144, 192), (240, 320)])
def test_placement_is_centred_and_inside_the_frame(source):
    for target in [(128, 128), (48, 64), (224, 224), (90, 160)]:
        p = place(source, target)
        assert p.top >= 0 and p.top + p.height <= target[0]
        assert p.left >= 0 and p.left + p.width <= target[1]
        assert abs(p.height / p.width - source[0] / source[1]) < 0.05
