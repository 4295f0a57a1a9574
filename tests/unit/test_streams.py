"""Training sequences over moving digits: causal offsets with gaps, label changes
inside sequences on demand, and items fixed by (seed, epoch, index) whatever the
number of DataLoader workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from adafocus.data.streams import DigitsSource, SequenceDataset, sample_offsets


def test_offsets_have_fixed_or_varying_gaps_within_bounds():
    rng = np.random.default_rng(0)
    fixed = [np.diff(sample_offsets(rng, 8, 4, "fixed")) for _ in range(50)]
    assert all(len(set(g.tolist())) == 1 for g in fixed)
    assert {int(g[0]) for g in fixed} == {1, 2, 3, 4}
    varying = np.concatenate([np.diff(sample_offsets(rng, 8, 3, "random")) for _ in range(50)])
    assert set(varying.tolist()) == {1, 2, 3}
    with pytest.raises(ValueError, match="gap_mode"):
        sample_offsets(rng, 8, 3, "sometimes")


def test_digit_sequences_have_training_shapes_and_requested_changes():
    data = SequenceDataset(DigitsSource("train", 64, 96, cache=4), length=12, max_gap=3,
                           gap_mode="random", change_fraction=1.0, seed=1, items=6)
    items = list(data)
    assert len(items) == 6
    for frames, labels in items:
        assert frames.shape == (12, 64, 96, 3) and frames.dtype == torch.uint8
        assert labels.shape == (12,) and labels.dtype == torch.int64
        assert (labels[1:] != labels[:-1]).any(), "no label change inside the sequence"
        assert labels.min() >= 0


def test_sequences_without_forced_changes_mostly_keep_one_label():
    data = SequenceDataset(DigitsSource("train", 48, 48, cache=4), length=4, change_fraction=0.0,
                           seed=2, items=20)
    constant = sum(int((labels == labels[0]).all()) for _, labels in data)
    assert constant >= 16  # 4 consecutive frames rarely straddle a 2-6 s segment boundary


def test_items_depend_on_seed_epoch_and_index_not_on_workers():
    def make(seed):
        return SequenceDataset(DigitsSource("train", 32, 32, cache=2), length=3, max_gap=2,
                               seed=seed, items=4)

    serial = [x for x in DataLoader(make(5), batch_size=None, num_workers=0)]
    parallel = [x for x in DataLoader(make(5), batch_size=None, num_workers=2)]
    for (fa, la), (fb, lb) in zip(serial, parallel, strict=True):
        assert torch.equal(fa, fb) and torch.equal(la, lb)
    other_seed = list(make(6))
    assert not torch.equal(other_seed[0][0], serial[0][0])
    next_epoch = make(5)
    next_epoch.set_epoch(1)
    assert not torch.equal(list(next_epoch)[0][0], serial[0][0])
