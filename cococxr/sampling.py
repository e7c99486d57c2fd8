"""Index samplers: which examples go into which batch, epoch by epoch.

Pure numpy, no TensorFlow. A sampler turns an epoch number into a list of batches
(arrays of example indices); the same ``(seed, epoch)`` always gives the same batches.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

from cococxr.errors import ConfigError


def _rng(seed: int, epoch: int) -> np.random.Generator:
    """The random generator of one epoch, derived from ``(seed, epoch)`` only."""
    return np.random.default_rng([int(seed), int(epoch)])


def _check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` as an int, or raise ConfigError if it is not positive."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class ShuffledSampler:
    """Every example once per epoch, in a fresh random order each epoch.

    Args:
        n: number of examples.
        batch_size: examples per batch.
        shuffle: False keeps the examples in index order.
        seed: base seed; epoch ``e`` is shuffled with ``(seed, e)``.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        self.n = int(n)
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(self.n, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def epoch_indices(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch as int64 arrays of example indices."""
        order = _rng(self.seed, epoch).permutation(self.n) if self.shuffle else np.arange(self.n)
        return [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]


class BalancedSampler:
    """Batches holding the same share of every class group, members balanced inside groups.

    Examples are interleaved round-robin: batch slot ``i`` goes to group ``i % G``, and
    the ``j``-th slot of a group to its member ``j % M``. So every batch holds
    ``floor`` or ``ceil`` of ``batch_size / G`` examples of each group (exactly
    ``batch_size / G`` when it divides), and inside a group of ``M`` members each member
    gets ``floor`` or ``ceil`` of its group's slots divided by ``M``. Each member's
    examples are drawn in shuffled passes, so minority examples repeat and no example
    repeats before all of its class has been used. The epoch has just enough full
    batches for the class that needs the most slots to be seen entirely, so every
    example appears at least once per epoch.

    Args:
        labels: one label per example (class names or ints).
        groups: ``{group: [member labels]}``; members of a group are balanced with each
            other. None makes every distinct label its own group (sorted order). A
            member with no examples is left out; a group with none raises.
        batch_size: examples per batch.
        seed: base seed; epoch ``e`` uses ``(seed, e)``.

    Raises:
        ConfigError: a label in no group, a label in two groups, or an empty group.
    """

    def __init__(self, labels: Sequence[Hashable], groups: Mapping[Hashable, Sequence[Hashable]] | None = None,
                 batch_size: int = 32, seed: int = 0):
        labels = list(labels)
        if groups is None:
            groups = {label: [label] for label in sorted(set(labels))}
        self.batch_size = _check_batch_size(batch_size)
        self.seed = seed
        self.groups = list(groups)
        member_group = {}
        for group, members in groups.items():
            for member in members:
                if member in member_group:
                    raise ConfigError(f"label {member!r} is in two groups: {member_group[member]!r} and {group!r}")
                member_group[member] = group
        by_member: dict[Hashable, list[int]] = {member: [] for member in member_group}
        for index, label in enumerate(labels):
            if label not in member_group:
                raise ConfigError(f"example {index} has label {label!r}, which is in no group; "
                                  f"groups: {dict(groups)!r}")
            by_member[label].append(index)
        #: per group, the example-index arrays of its non-empty members
        self.members = []
        for group, members in groups.items():
            pools = [np.asarray(by_member[m], np.int64) for m in members if by_member[m]]
            if not pools:
                raise ConfigError(f"class group {group!r} ({list(members)!r}) has no examples")
            self.members.append(pools)
        n_groups = len(self.members)
        # slots a pool needs so that all of it is seen: its size times its share's inverse
        slots = max(len(pool) * n_groups * len(pools) for pools in self.members for pool in pools)
        self._n_batches = -(-slots // self.batch_size)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        return self._n_batches

    def epoch_indices(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch as int64 arrays of example indices (order shuffled)."""
        rng = _rng(self.seed, epoch)
        total = self._n_batches * self.batch_size
        out = np.empty(total, np.int64)
        n_groups = len(self.members)
        for g, pools in enumerate(self.members):
            group_slots = np.arange(g, total, n_groups)
            for m, pool in enumerate(pools):
                member_slots = group_slots[m::len(pools)]
                out[member_slots] = _passes(pool, len(member_slots), rng)
        batches = out.reshape(self._n_batches, self.batch_size)
        return [rng.permutation(batch) for batch in batches]


def _passes(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` draws from ``pool``: consecutive shuffled passes over all of it."""
    reps = -(-count // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:count]


__all__ = ["BalancedSampler", "ShuffledSampler"]
