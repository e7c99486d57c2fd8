"""Segment-then-classify: one savable Keras model from a U-Net and a classifier.

:func:`build_segment_then_classify` wires a trained segmentation model and a trained
classifier into a single functional model, so deployment is one file that
:func:`cococxr.models.io.load_model` reads back::

    radiograph (any size, 0..1)
      -> resize to the U-Net input (bilinear) -> U-Net -> mask = (probability > threshold)
      -> image * mask -> histogram equalisation -> resize to the classifier input
      -> classifier -> {"probabilities", "mask"}

Both sub-models keep their weights and stay nested (frozen copies are not made): the
composite is for inference; train the parts separately.
"""
from __future__ import annotations

from cococxr._tf import keras
from cococxr.errors import ConfigError
from cococxr.models.layers import (ApplyMask, BinarizeMask, GrayscaleToRGB,
                                   HistogramEqualization, ResizeLike)


def _static_input(model, role: str) -> tuple[int, int, int]:
    shape = tuple(model.input_shape)
    if len(shape) != 4 or None in shape[1:]:
        raise ConfigError(f"{role} model {model.name!r} needs a fixed (height, width, "
                          f"channels) input, got input_shape={shape}")
    return shape[1], shape[2], shape[3]


def _match_channels(x, have: int, want: int, role: str):
    """Return ``x`` with ``want`` channels: unchanged, or a grayscale channel repeated."""
    if have == want:
        return x
    if (have, want) == (1, 3):
        return GrayscaleToRGB(name=f"{role}_to_rgb")(x)
    raise ConfigError(f"the {role} model takes {want}-channel images but the composite "
                      f"input has {have}; use channels={want} or a 1-channel input")


def build_segment_then_classify(seg_model, cls_model, *, channels: int | None = None,
                                threshold: float = 0.5, mask_channels=None,
                                equalize: bool = True, name: str = "segment_then_classify"):
    """Build one model that masks the lungs with ``seg_model`` and classifies with ``cls_model``.

    Args:
        seg_model: a segmentation model with a fixed input size, taking 0..1 images and
            giving per-class probabilities ``(B, h, w, K)``.
        cls_model: a classifier with a fixed input size, taking 0..1 images (as built by
            :func:`cococxr.models.classifiers.build_classifier`).
        channels: channels of the composite's input; None: those of ``cls_model``. A
            1-channel input is repeated for sub-models that take 3 channels.
        threshold: mask = probability ``> threshold``.
        mask_channels: the segmentation channels (classes) united into the mask; None: all.
        equalize: equalise the histogram of the masked image (values stay in 0..1).
        name: the composite model's name.

    Returns:
        An uncompiled functional model. Input ``"image"``: ``(B, H, W, channels)`` float
        in 0..1, any ``H`` and ``W`` (one size per batch). Outputs, a dict:
        ``"probabilities"``: the classifier's output; ``"mask"``: the binary float32 mask
        ``(B, H, W, 1)`` resized back to the input size with nearest neighbour.

    Raises:
        ConfigError: a sub-model has no fixed input size or incompatible channels.
    """
    seg_h, seg_w, seg_c = _static_input(seg_model, "segmentation")
    cls_h, cls_w, cls_c = _static_input(cls_model, "classification")
    channels = cls_c if channels is None else channels
    image = keras.Input((None, None, channels), name="image")
    x = keras.layers.Resizing(seg_h, seg_w, name="resize_to_segmenter")(image)
    probabilities = seg_model(_match_channels(x, channels, seg_c, "segmentation"))
    mask = BinarizeMask(threshold, mask_channels, name="binarize_mask")(probabilities)
    x = ApplyMask(name="apply_mask")([x, mask])
    if equalize:
        x = HistogramEqualization((0, 1), name="equalize")(x)
    x = keras.layers.Resizing(cls_h, cls_w, name="resize_to_classifier")(x)
    classes = cls_model(_match_channels(x, channels, cls_c, "classification"))
    outputs = {
        "probabilities": keras.layers.Identity(name="probabilities")(classes),
        "mask": ResizeLike("nearest", name="mask")([mask, image]),
    }
    return keras.Model(image, outputs, name=name)


__all__ = ["build_segment_then_classify"]
