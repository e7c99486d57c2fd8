"""cococxr: medical image segmentation data in COCO format.

Importing ``cococxr`` changes nothing global (no environment variable, no TensorFlow); the
public names below load their modules on first use. The tf-keras ones
(``CocoSegmentationSequence``...) set the tf-keras environment when first used
(:mod:`cococxr._env`); framework-free batches, Keras 3 and torch adapters do not.
"""
import importlib

from cococxr._version import __version__

_LAZY = {
    "CocoDataset": "cococxr.coco",
    "CocoBuilder": "cococxr.coco",
    "ValidationIssue": "cococxr.coco",
    "SegmentationBatches": "cococxr.batches",
    "ClassificationBatches": "cococxr.batches",
    "CocoSegmentationSequence": "cococxr.sequences",
    "CocoClassificationSequence": "cococxr.sequences",
    "DataGeneratorFromCocoJson": "cococxr.sequences",
    "build_segmentation_model": "cococxr.models",
    "build_classifier": "cococxr.models",
    "load_model": "cococxr.models",
    "save_model": "cococxr.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cococxr' has no attribute {name!r}")
