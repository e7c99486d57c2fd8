"""PyTorch: the framework-free batches as a ``torch.utils.data`` pipeline (the torch import point).

Never imports TensorFlow or Keras::

    from cococxr.batches import SegmentationBatches
    from cococxr.torch_data import make_loader
    loader = make_loader(SegmentationBatches("train.json", ["lung"], batch_size=8, input_size=256),
                         num_workers=2)
    for epoch in range(10):
        for images, masks in loader:   # float32 (B, C, H, W), (B, K, H, W)
            ...

Each batch is loaded whole by one worker from its key ``(epoch, index)``
(:class:`EpochBatchSampler` walks the epochs; the batches' own sampler makes the balanced
or shuffled batches), and every random choice of an item is seeded from ``(seed, epoch,
position)``: the same seed gives the same batches, in the same order, for any
``num_workers``.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cococxr.batches import CocoBatches


class EpochBatchSampler(Sampler):
    """Keys ``(epoch, batch index)`` of one epoch per pass; each pass moves to the next epoch.

    Args:
        batches: the :class:`~cococxr.batches.CocoBatches` whose epochs to walk.
        start_epoch: the first epoch (default: the batches' current one), e.g. to resume.
    """

    def __init__(self, batches: CocoBatches, start_epoch: int | None = None):
        self.batches = batches
        self.epoch = batches.epoch if start_epoch is None else int(start_epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        # The epoch is taken when the first key is drawn, not when the iterator is made:
        # DataLoader's worker iterator makes one and throws it away before the one it uses.
        def keys():
            epoch, self.epoch = self.epoch, self.epoch + 1
            for index in range(len(self.batches)):
                yield epoch, index

        return keys()

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass yields."""
        self.epoch = int(epoch)


def _tensor(array: np.ndarray, channels_first: bool) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if channels_first and tensor.ndim == 4:  # (B, H, W, C) images and masks
        tensor = tensor.permute(0, 3, 1, 2).contiguous()
    return tensor


class CocoTorchDataset(Dataset):
    """A map-style dataset whose item ``(epoch, index)`` is one whole batch, as torch tensors.

    Args:
        batches: a :class:`~cococxr.batches.SegmentationBatches` or
            :class:`~cococxr.batches.ClassificationBatches`.
        channels_first: images ``(B, C, H, W)`` and channel masks ``(B, K, H, W)`` (torch's
            layout); False keeps the batches' ``(B, H, W, C)``.
    """

    def __init__(self, batches: CocoBatches, channels_first: bool = True):
        self.batches = batches
        self.channels_first = channels_first

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, key):
        epoch, index = key
        arrays = self.batches.batch_at(epoch, index)
        if self.batches.subset == "predict":
            return _tensor(arrays, self.channels_first)
        return tuple(_tensor(a, self.channels_first) for a in arrays)


def seed_worker(worker_id: int) -> None:
    """Seed ``random`` and numpy in a worker from torch's per-worker seed (for user transforms)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(batches: CocoBatches, *, num_workers: int = 0, channels_first: bool = True,
                start_epoch: int | None = None, **loader_options) -> DataLoader:
    """A ``DataLoader`` of whole batches: one pass = one epoch, reproducible for any ``num_workers``.

    Args:
        batches: the batches to load.
        num_workers: worker processes (each gets a copy of ``batches``; a model given as
            ``mask_with`` needs ``num_workers=0``).
        channels_first: see :class:`CocoTorchDataset`.
        start_epoch: see :class:`EpochBatchSampler`.
        **loader_options: further ``DataLoader`` keywords (``pin_memory``,
            ``prefetch_factor``...). ``persistent_workers`` defaults to True with workers:
            restarting them every epoch costs about a tenth of the throughput of a
            short epoch (``benchmarks/bench_sequence.py``).
    """
    loader_options.setdefault("persistent_workers", num_workers > 0)
    return DataLoader(CocoTorchDataset(batches, channels_first), batch_size=None,
                      sampler=EpochBatchSampler(batches, start_epoch), num_workers=num_workers,
                      worker_init_fn=seed_worker, **loader_options)


__all__ = ["EpochBatchSampler", "CocoTorchDataset", "seed_worker", "make_loader"]
