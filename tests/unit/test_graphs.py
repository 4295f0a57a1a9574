"""Sub-networks at bucketed batch sizes (adafocus.graphs): the padding is invisible
to the rows it serves, on the CPU (the same code as CUDA without the capture) and,
where a GPU is present, as replayed CUDA graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adafocus.graphs import GraphRunner, bucket


def test_buckets_are_the_next_power_of_two():
    assert [bucket(n) for n in (1, 2, 3, 4, 5, 31, 32, 33)] == [1, 2, 4, 4, 8, 32, 32, 64]


def test_padded_runs_return_exactly_the_rows_given_whatever_the_nesting():
    seen = []

    def network(x, nothing, hidden):
        seen.append(x.shape[0])
        assert nothing is None
        return x * 2, (hidden + 1, None)

    runner = GraphRunner(torch.device("cpu"), enabled=True, pad=True)
    x = torch.arange(15.0).reshape(5, 3)
    doubled, (hidden, none) = runner.run("net", network, x, None, torch.zeros(5, 2))
    assert seen == [8]  # padded to the bucket
    assert torch.equal(doubled, x * 2) and torch.equal(hidden, torch.ones(5, 2)) and none is None
    plain = GraphRunner(torch.device("cpu"), enabled=True)  # the CPU's default: as it is
    plain.run("net", network, x, None, torch.zeros(5, 2))
    assert seen == [8, 5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_graphed_cuda_step_answers_like_the_eager_one():
    from adafocus import IMAGENET_NORMALIZATION, AdaFocus, OnlineAdaFocus, component_gflops
    from adafocus.config import preset

    torch.manual_seed(0)
    config = preset("tiny")
    model = AdaFocus(config).eval()
    names = [str(i) for i in range(10)]
    runners = [OnlineAdaFocus(model, names, IMAGENET_NORMALIZATION, component_gflops(config),
                              device="cuda", cuda_graphs=graphs) for graphs in (False, True)]
    frames = np.random.default_rng(0).integers(0, 256, (3, 6, 128, 128, 3), dtype=np.uint8)
    for t in range(6):
        ids = ["a", "b", "c"][: 1 + t % 3]
        eager, graphed = (r.step(frames[: len(ids), t], ids) for r in runners)
        for want, got in zip(eager, graphed, strict=True):
            assert got.class_id == want.class_id and got.action == want.action
            assert got.patch == pytest.approx(want.patch, abs=1e-3)
