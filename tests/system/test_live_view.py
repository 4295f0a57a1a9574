"""The live page in a real browser (headless Chromium) against a real pipeline:
every stream appears with a live label, and its preview shows the frame with the
focus patch's box."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stream.serve.api.preview import BOX
from tests.support.browser import chromium, require_browser
from tests.support.net import wait_until
from tests.support.pipeline import Pipeline, pipeline_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

STREAMS = ("cam-1", "cam-2", "cam-3")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Iterator[Pipeline]:
    require_browser()
    workdir = tmp_path_factory.mktemp("live-view")
    streams = [{"id": sid, "uri": f"synthetic://digits?fps=10&seed={i}"}
               for i, sid in enumerate(STREAMS, 1)]
    running = Pipeline(workdir, pipeline_config("builtin:digits", streams))
    try:
        for sid in STREAMS:
            running.collector.wait_labels(sid, timeout=60)
    except AssertionError as exc:
        running.close()
        raise running.with_log(exc) from exc
    yield running
    running.close()


def cards(driver) -> dict[str, dict[str, str]]:
    from selenium.webdriver.common.by import By

    found = {}
    for card in driver.find_elements(By.CSS_SELECTOR, "article.stream"):
        found[card.get_attribute("data-id")] = {
            key: card.find_element(By.CSS_SELECTOR, f".{key}").text
            for key in ("state", "label", "score", "saved")}
    return found


def box_pixels(image: np.ndarray) -> int:
    """Pixels of the patch box's colour (JPEG shifts colours a little)."""
    distance = np.abs(image.astype(int) - np.array(BOX)).sum(axis=2)
    return int((distance < 90).sum())


def test_the_page_shows_every_stream_live_with_a_preview_of_the_patch(pipeline, tmp_path: Path):
    from selenium.webdriver.common.by import By

    try:
        with chromium() as driver:
            driver.get(pipeline.metrics_url + "/")
            shown = wait_until(lambda: (c := cards(driver)) and set(c) == set(STREAMS) and all(
                v["state"] == "up" and v["label"] not in ("", "–") for v in c.values()) and c,
                30, "every stream up with a label on the page")
            first = {sid: v["score"] for sid, v in shown.items()}
            wait_until(lambda: any(cards(driver)[sid]["score"] != first[sid] for sid in STREAMS),
                       30, "a score to change without reloading the page")
            preview = driver.find_element(By.CSS_SELECTOR,
                                          'article[data-id="cam-1"] img.preview')
            wait_until(lambda: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", preview),
                30, "cam-1's preview to show a frame")
            shot = driver.get_screenshot_as_png()
            (tmp_path / "live-view.png").write_bytes(shot)
            rect = preview.rect
            scale = driver.execute_script("return window.devicePixelRatio") or 1
            page = Image.open(io.BytesIO(shot)).convert("RGB")
            crop = np.asarray(page.crop(tuple(int(v * scale) for v in (
                rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"]))))
        assert crop.size and crop.std() > 10, "the preview is blank"
        assert box_pixels(crop) > 200, "no patch box in the preview"
    except AssertionError as exc:
        raise pipeline.with_log(exc) from exc
