"""ShuffledSampler and BalancedSampler: batch composition, coverage, determinism."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cococxr.errors import ConfigError
from cococxr.sampling import BalancedSampler, ShuffledSampler


def test_shuffled_sampler_covers_each_example_once_and_keeps_the_last_batch():
    sampler = ShuffledSampler(10, 4, seed=1)
    batches = sampler.epoch_indices(0)
    assert [len(b) for b in batches] == [4, 4, 2] and len(sampler) == 3
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [b.tolist() for b in ShuffledSampler(10, 4, seed=1).epoch_indices(0)] == [b.tolist() for b in batches]
    assert np.concatenate(sampler.epoch_indices(1)).tolist() != np.concatenate(batches).tolist()
    assert [len(b) for b in ShuffledSampler(10, 4, drop_last=True).epoch_indices(0)] == [4, 4]
    assert np.concatenate(ShuffledSampler(5, 2, shuffle=False).epoch_indices(3)).tolist() == [0, 1, 2, 3, 4]


def test_covid_vs_all_shares():
    """50 % COVID; the other half split equally between the three non-COVID classes."""
    labels = ["COVID"] * 30 + ["Normal"] * 200 + ["Lung_Opacity"] * 120 + ["Viral Pneumonia"] * 10
    groups = {"COVID": ["COVID"], "non-COVID": ["Normal", "Lung_Opacity", "Viral Pneumonia"]}
    sampler = BalancedSampler(labels, groups, batch_size=12, seed=0)
    assert len(sampler) == 200 * 2 * 3 // 12  # Normal needs 6 slots per example
    seen = Counter()
    for batch in sampler.epoch_indices(0):
        counts = Counter(labels[i] for i in batch)
        assert counts == {"COVID": 6, "Normal": 2, "Lung_Opacity": 2, "Viral Pneumonia": 2}
        seen.update(batch.tolist())
    assert set(seen) == set(range(len(labels)))
    assert max(seen[i] for i in range(30)) - min(seen[i] for i in range(30)) <= 1  # repeats spread evenly


@settings(max_examples=40)
@given(sizes=st.lists(st.lists(st.integers(1, 25), min_size=1, max_size=3), min_size=1, max_size=4),
       batch_size=st.integers(1, 17), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 5))
def test_balanced_batches_hit_the_shares_and_cover_everything(sizes, batch_size, seed, epoch):
    labels, groups = [], {}
    for g, members in enumerate(sizes):
        groups[f"g{g}"] = [f"g{g}m{m}" for m in range(len(members))]
        for m, n in enumerate(members):
            labels += [f"g{g}m{m}"] * n
    group_of = {m: g for g, ms in groups.items() for m in ms}
    sampler = BalancedSampler(labels, groups, batch_size=batch_size, seed=seed)
    batches = sampler.epoch_indices(epoch)
    assert len(batches) == len(sampler) and all(len(b) == batch_size for b in batches)
    share = batch_size / len(groups)
    for batch in batches:
        per_group = Counter(group_of[labels[i]] for i in batch)
        for group, members in groups.items():
            assert np.floor(share) <= per_group[group] <= np.ceil(share)
            per_member = Counter(labels[i] for i in batch if group_of[labels[i]] == group)
            inner = per_group[group] / len(members)
            assert all(np.floor(inner) <= per_member[m] <= np.ceil(inner) for m in members)
    counts = Counter(np.concatenate(batches).tolist())
    assert set(counts) == set(range(len(labels)))  # every example, every epoch
    for member in group_of:  # repeats of a class are spread evenly over its examples
        used = [counts[i] for i, label in enumerate(labels) if label == member]
        assert max(used) - min(used) <= 1
    again = BalancedSampler(labels, groups, batch_size=batch_size, seed=seed).epoch_indices(epoch)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_exact_share_when_the_batch_divides():
    labels = [0] * 3 + [1] * 50 + [2] * 7
    sampler = BalancedSampler(labels, batch_size=9, seed=4)
    for batch in sampler.epoch_indices(2):
        assert np.bincount(np.asarray(labels)[batch], minlength=3).tolist() == [3, 3, 3]
    assert len(sampler) == 50 * 3 // 9 + 1


def test_bad_groups_raise():
    with pytest.raises(ConfigError, match="in no group"):
        BalancedSampler(["a", "b", "c"], {"x": ["a", "b"]}, batch_size=2)
    with pytest.raises(ConfigError, match="no examples"):
        BalancedSampler(["a", "b"], {"x": ["a", "b"], "y": ["z"]}, batch_size=2)
    with pytest.raises(ConfigError, match="two groups"):
        BalancedSampler(["a"], {"x": ["a"], "y": ["a"]}, batch_size=2)
    with pytest.raises(ConfigError, match="batch_size"):
        ShuffledSampler(3, 0)
