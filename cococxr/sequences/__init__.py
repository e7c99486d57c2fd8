"""Keras Sequences that stream images with masks or labels straight from a COCO file.

The COCO file is read and indexed once; each batch is decoded from the image files on
the fly. Every random choice of an item (its augmentation, the replacement of an
unreadable image) is seeded from ``(seed, epoch, position in the epoch)``, so results
do not depend on how many worker threads Keras uses. See docs/sequences.md.
"""
from cococxr.sequences.base import CocoSequence, is_lung_masker
from cococxr.sequences.classification import CocoClassificationSequence
from cococxr.sequences.segmentation import CocoSegmentationSequence, DataGeneratorFromCocoJson

__all__ = ["CocoClassificationSequence", "CocoSegmentationSequence", "DataGeneratorFromCocoJson", "CocoSequence",
           "is_lung_masker"]
