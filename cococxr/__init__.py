"""cococxr: medical image segmentation data in COCO format.

Importing ``cococxr`` configures the Keras flavour (see :mod:`cococxr._env`) but does not
import TensorFlow; the public names below load their modules on first use.
"""
import importlib

from cococxr import _env  # noqa: F401  (must run before anything imports TensorFlow)
from cococxr._version import __version__

_LAZY = {
    "CocoDataset": "cococxr.coco",
    "CocoBuilder": "cococxr.coco",
    "ValidationIssue": "cococxr.coco",
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
