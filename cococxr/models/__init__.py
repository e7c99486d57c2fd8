"""Keras models: segmentation (segmentation_models + a plain U-Net), classifiers, custom
layers and the segment-then-classify composite, with one save/load pair for all.

Importing this package imports TensorFlow (through :mod:`cococxr._tf`).
"""
from cococxr.models.classifiers import (
    CLASSIFIERS,
    build_classifier,
    compile_classifier,
    fine_tune,
    set_backbone_trainable,
)
from cococxr.models.composite import build_segment_then_classify
from cococxr.models.io import load_model, register_custom_object, save_model
from cococxr.models.layers import HistogramEqualization
from cococxr.models.segmentation import (
    ARCHITECTURES,
    backbone_names,
    build_plain_unet,
    build_segmentation_model,
    compile_segmentation_model,
    get_loss,
    get_metrics,
)

__all__ = [
    "ARCHITECTURES",
    "CLASSIFIERS",
    "HistogramEqualization",
    "backbone_names",
    "build_classifier",
    "build_plain_unet",
    "build_segment_then_classify",
    "build_segmentation_model",
    "compile_classifier",
    "compile_segmentation_model",
    "fine_tune",
    "get_loss",
    "get_metrics",
    "load_model",
    "register_custom_object",
    "save_model",
    "set_backbone_trainable",
]
