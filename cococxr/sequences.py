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
from cococxr.batches import ClassificationBatches, SegmentationBatches, is_lung_masker, kaggle_generator_arguments


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


__all__ = ["CocoClassificationSequence", "CocoSegmentationSequence", "DataGeneratorFromCocoJson", "is_lung_masker"]
