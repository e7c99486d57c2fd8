"""tf-keras Sequences over the framework-free batches (:mod:`cococxr.batches`).

The same API as ever: ``CocoSegmentationSequence``, ``CocoClassificationSequence`` and
the Kaggle drop-in ``DataGeneratorFromCocoJson`` are ``tf_keras.utils.Sequence``\\ s whose
batches come from :class:`~cococxr.batches.SegmentationBatches` /
:class:`~cococxr.batches.ClassificationBatches`; their parameters are documented there.
Importing this module is the tf-keras import point (:mod:`cococxr._tf`); Keras 3 users
take :mod:`cococxr.keras3`, PyTorch users :mod:`cococxr.torch_data`. See docs/sequences.md.
"""
from __future__ import annotations

from cococxr._tf import keras
from cococxr.batches import (ClassificationBatches, CocoBatches, ProcessLoader, SegmentationBatches, is_lung_masker,
                             kaggle_generator_arguments)


class CocoSegmentationSequence(SegmentationBatches, keras.utils.Sequence):
    """Images and per-class masks from a COCO file as a tf-keras Sequence.

    Takes the parameters of :class:`~cococxr.batches.SegmentationBatches`.
    """


class CocoClassificationSequence(ClassificationBatches, keras.utils.Sequence):
    """Images and image-level labels from a COCO file as a tf-keras Sequence.

    Takes the parameters of :class:`~cococxr.batches.ClassificationBatches`.
    """


class DataGeneratorFromCocoJson(CocoSegmentationSequence):
    """Drop-in replacement for the Kaggle kernel's generator of the same name (tf-keras).

    Takes the kernel's keywords (and ``path_folder`` of its variants):
    :func:`~cococxr.batches.kaggle_generator_arguments` documents them.
    """

    def __init__(self, batch_size: int = 8, subset: str = "train", image_list=None, classes=None,
                 input_image_size=(128, 128), annFile=None, shuffle: bool = False, **kwargs):
        super().__init__(**kaggle_generator_arguments(batch_size, subset, image_list, classes, input_image_size,
                                                      annFile, shuffle, **kwargs))


class ProcessSequence(keras.utils.Sequence):
    """Any of these Sequences (or framework-free batches) loaded by worker processes, for ``fit``.

    A :class:`~cococxr.batches.ProcessLoader` does the loading: ``workers`` processes
    write whole batches into shared memory and run ahead across epoch ends. Pass
    ``fit(..., workers=1, shuffle=False)``: one tf-keras thread asks for the batches in
    order, the processes load them. :meth:`close` stops the workers (so does the end of
    a ``with`` block).

    Args:
        batches: a Sequence of this module or a :class:`~cococxr.batches.CocoBatches`.
        workers, prefetch, start_method, timeout: see :class:`~cococxr.batches.ProcessLoader`.
    """

    def __init__(self, batches: CocoBatches, workers: int = 2, *, prefetch: int | None = None,
                 start_method: str | None = None, timeout: float | None = None):
        super().__init__()
        self.batches = batches
        self.loader = ProcessLoader(batches, workers, prefetch=prefetch, start_method=start_method,
                                    timeout=timeout)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        """Batch ``index`` of the batches' current epoch."""
        return self.loader.get(self.batches.epoch, index)

    def on_epoch_end(self) -> None:
        """Advance the batches one epoch (see :meth:`~cococxr.batches.CocoBatches.on_epoch_end`)."""
        self.batches.on_epoch_end()

    def close(self) -> None:
        """Stop the worker processes."""
        self.loader.close()

    def __enter__(self) -> "ProcessSequence":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["CocoClassificationSequence", "CocoSegmentationSequence", "DataGeneratorFromCocoJson", "ProcessSequence",
           "is_lung_masker"]
