"""Keras 3: the framework-free batches as a ``keras.utils.PyDataset`` (the Keras 3 import point).

Works on every Keras 3 backend (TensorFlow, JAX, torch) and never imports tf-keras::

    from cococxr.keras3 import segmentation_dataset
    train = segmentation_dataset("train.json", ["lung"], batch_size=8, input_size=256, workers=2)
    model.fit(train, epochs=10, shuffle=False, callbacks=[train.epochs])

Pass ``shuffle=False`` to ``fit``: the batches shuffle themselves every epoch, from
``(seed, epoch)``, so that the same seed gives the same batches with any number of
workers (threads or processes). With the ``epochs`` callback, epoch ``e`` of ``fit`` is
the batches' epoch ``e`` exactly (``initial_epoch`` included); without it the dataset
advances at each ``on_epoch_end`` Keras calls, and Keras 3 calls one before the first
epoch on some backends (measured: TensorFlow and torch), so the first epoch is then the
batches' epoch 1.
"""
from __future__ import annotations

import keras

from cococxr.batches import ClassificationBatches, CocoBatches, SegmentationBatches, kaggle_generator_arguments

if not keras.__version__.startswith("3."):  # pragma: no cover - guarded misconfiguration
    raise ImportError(f"cococxr.keras3 needs Keras 3, found keras {keras.__version__}")


class CocoPyDataset(keras.utils.PyDataset):
    """A Keras 3 ``PyDataset`` over :class:`~cococxr.batches.CocoBatches`.

    Args:
        batches: a :class:`~cococxr.batches.SegmentationBatches` or
            :class:`~cococxr.batches.ClassificationBatches`.
        workers, use_multiprocessing, max_queue_size: as ``keras.utils.PyDataset`` takes
            them (processes get a copy of ``batches`` each epoch; a model given as
            ``mask_with`` needs threads).
    """

    def __init__(self, batches: CocoBatches, *, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.batches = batches
        self._driven = False

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        return self.batches[index]

    def on_epoch_end(self) -> None:
        """Advance the batches one epoch, unless the :attr:`epochs` callback sets them."""
        if not self._driven:
            self.batches.on_epoch_end()

    @property
    def epochs(self) -> "keras.callbacks.Callback":
        """A callback for ``fit`` that sets the batches' epoch to ``fit``'s at each epoch's start."""
        self._driven = True
        return _EpochCallback(self.batches)


class _EpochCallback(keras.callbacks.Callback):
    """Sets the batches' epoch at each epoch begin (before Keras starts loading that epoch)."""

    def __init__(self, batches: CocoBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


def segmentation_dataset(source, classes, *, workers: int = 1, use_multiprocessing: bool = False,
                         max_queue_size: int = 10, **kwargs) -> CocoPyDataset:
    """A :class:`CocoPyDataset` of :class:`~cococxr.batches.SegmentationBatches` (same keywords)."""
    return CocoPyDataset(SegmentationBatches(source, classes, **kwargs), workers=workers,
                         use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)


def classification_dataset(source, classes, *, workers: int = 1, use_multiprocessing: bool = False,
                           max_queue_size: int = 10, **kwargs) -> CocoPyDataset:
    """A :class:`CocoPyDataset` of :class:`~cococxr.batches.ClassificationBatches` (same keywords)."""
    return CocoPyDataset(ClassificationBatches(source, classes, **kwargs), workers=workers,
                         use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)


class DataGeneratorFromCocoJson(CocoPyDataset):
    """The Kaggle kernel's generator for Keras 3: its keywords (and ``path_folder``), defects fixed.

    :func:`~cococxr.batches.kaggle_generator_arguments` documents the keywords; ``workers``,
    ``use_multiprocessing`` and ``max_queue_size`` go to the PyDataset.
    """

    def __init__(self, batch_size: int = 8, subset: str = "train", image_list=None, classes=None,
                 input_image_size=(128, 128), annFile=None, shuffle: bool = False, *, workers: int = 1,
                 use_multiprocessing: bool = False, max_queue_size: int = 10, **kwargs):
        batches = SegmentationBatches(**kaggle_generator_arguments(batch_size, subset, image_list, classes,
                                                                   input_image_size, annFile, shuffle, **kwargs))
        super().__init__(batches, workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)


__all__ = ["CocoPyDataset", "segmentation_dataset", "classification_dataset", "DataGeneratorFromCocoJson"]
