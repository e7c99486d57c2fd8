"""Keras models: segmentation (segmentation_models + a plain U-Net), classifiers, custom
layers and the segment-then-classify composite, with one save/load pair for all.

Importing this package imports nothing heavy: :mod:`cococxr.models.registry` (the model
names) needs no TensorFlow, and the names below load their modules (and TensorFlow,
through :mod:`cococxr._tf`) on first use.
"""
import importlib

_LAZY = {
    "CLASSIFIERS": "cococxr.models.classifiers",
    "build_classifier": "cococxr.models.classifiers",
    "compile_classifier": "cococxr.models.classifiers",
    "fine_tune": "cococxr.models.classifiers",
    "set_backbone_trainable": "cococxr.models.classifiers",
    "build_segment_then_classify": "cococxr.models.composite",
    "load_model": "cococxr.models.io",
    "register_custom_object": "cococxr.models.io",
    "save_model": "cococxr.models.io",
    "HistogramEqualization": "cococxr.models.layers",
    "ARCHITECTURES": "cococxr.models.segmentation",
    "backbone_names": "cococxr.models.segmentation",
    "build_plain_unet": "cococxr.models.segmentation",
    "build_segmentation_model": "cococxr.models.segmentation",
    "compile_segmentation_model": "cococxr.models.segmentation",
    "get_loss": "cococxr.models.segmentation",
    "get_metrics": "cococxr.models.segmentation",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cococxr.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
