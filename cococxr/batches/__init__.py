"""Framework-free batches of images with masks or labels, streamed from a COCO file.

The COCO file is read and indexed once; each batch is decoded from the image files on
the fly, as numpy arrays. Every random choice of an item (its augmentation, the
replacement of an unreadable image) is seeded from ``(seed, epoch, position in the
epoch)``, so results do not depend on how many workers (threads or processes) load them.

Adapters give these batches to each framework, one import point per framework:
:mod:`cococxr.sequences` (tf-keras ``Sequence``), :mod:`cococxr.keras3` (Keras 3
``PyDataset``), :mod:`cococxr.torch_data` (torch ``Dataset`` and batch sampler) and
:mod:`cococxr.tfdata` (``tf.data``). :class:`ProcessLoader` loads them in worker
processes through shared memory. See docs/sequences.md.
"""
from cococxr.batches.base import CocoBatches, is_lung_masker
from cococxr.batches.classification import ClassificationBatches
from cococxr.batches.processes import ProcessLoader, WorkerError
from cococxr.batches.segmentation import SegmentationBatches, kaggle_generator_arguments

__all__ = ["CocoBatches", "SegmentationBatches", "ClassificationBatches", "kaggle_generator_arguments",
           "is_lung_masker", "ProcessLoader", "WorkerError"]
