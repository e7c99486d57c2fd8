"""Segment-then-classify: one savable Keras model from a U-Net and a classifier.

:func:`build_segment_then_classify` wires a trained segmentation model and a trained
classifier into a single functional model, so deployment is one file that
:func:`cococxr.models.io.load_model` reads back. The graph follows the order of the one
model-input path (:mod:`cococxr.model_input`), from each model's recorded
:class:`~cococxr.model_input.ModelInput`::

    radiograph (native size, 0..1)
      -> [equalise] -> resize to the U-Net input (area) -> U-Net
         -> lung probability (union of the mask channels) -> resize to the classifier input
            (bilinear) -> mask = probability > threshold
      -> [equalise] -> resize to the classifier input (area) -> times the mask -> [equalise]
      -> classifier -> {"probabilities", "mask"}

The Python path (:class:`~cococxr.sequences.CocoClassificationSequence` with a lung
masker) equalises and resizes uint8 images with OpenCV; the graph does the same steps in
float32 TensorFlow ops, so values can differ by a grey level or so where rounding falls
differently (docs/classification.md gives the measured difference on real films).

Both sub-models keep their weights and stay nested (frozen copies are not made): the
composite is for inference; train the parts separately.
"""
from __future__ import annotations

from cococxr._tf import keras
from cococxr.errors import ConfigError
from cococxr.model_input import ModelInput
from cococxr.models.layers import (ApplyMask, BinarizeMask, GrayscaleToRGB, HistogramEqualization, ResizeLike,
                                   UniteChannels)


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


def _check_spec(spec: ModelInput, model, role: str) -> ModelInput:
    """``spec`` (default: the model's input shape, no equalisation), checked against the model."""
    height, width, channels = _static_input(model, role)
    spec = spec or ModelInput((height, width), channels)
    if spec.input_size != (height, width) or spec.channels != channels:
        raise ConfigError(f"the {role} model takes {(height, width, channels)} but its input spec says "
                          f"{(*spec.input_size, spec.channels)}")
    if spec.equalize not in (None, "hist") or spec.preprocessing is not None:
        raise ConfigError(f"the composite graph equalises with 'hist' and applies no backbone preprocessing; "
                          f"the {role} model's input spec asks equalize={spec.equalize!r}, "
                          f"preprocessing={spec.preprocessing!r}")
    return spec


def _equalised(x, spec: ModelInput, name: str):
    return HistogramEqualization((0, 1), name=name)(x) if spec.equalize else x


def build_segment_then_classify(seg_model, cls_model, *, seg_input: ModelInput | None = None,
                                cls_input: ModelInput | None = None, channels: int | None = None,
                                threshold: float = 0.5, mask_channels=None,
                                name: str = "segment_then_classify"):
    """Build one model that masks the lungs with ``seg_model`` and classifies with ``cls_model``.

    Args:
        seg_model: a segmentation model with a fixed input size, taking 0..1 images and
            giving per-class probabilities ``(B, h, w, K)``.
        cls_model: a classifier with a fixed input size, taking 0..1 images (as built by
            :func:`cococxr.models.classifiers.build_classifier`).
        seg_input: the U-Net's recorded input spec (its model card's ``input``); None:
            its input shape, no equalisation.
        cls_input: the classifier's; None: its input shape with ``equalize="hist"``
            (the classifier recipe's).
        channels: channels of the composite's input; None: those of ``cls_model``. A
            1-channel input is repeated for sub-models that take 3 channels.
        threshold: mask = probability ``> threshold``.
        mask_channels: the segmentation channels (classes) united into the mask; None: all.
        name: the composite model's name.

    Returns:
        An uncompiled functional model. Input ``"image"``: ``(B, H, W, channels)`` float
        in 0..1, any ``H`` and ``W`` (one size per batch). Outputs, a dict:
        ``"probabilities"``: the classifier's output; ``"mask"``: the binary float32 mask
        ``(B, H, W, 1)`` resized back to the input size with nearest neighbour.

    Raises:
        ConfigError: a sub-model has no fixed input size, incompatible channels, or an
            input spec the graph cannot reproduce (CLAHE, backbone preprocessing).
    """
    seg_input = _check_spec(seg_input, seg_model, "segmentation")
    if cls_input is None:
        cls_input = ModelInput(_static_input(cls_model, "classification")[:2],
                               _static_input(cls_model, "classification")[2], "hist")
    cls_input = _check_spec(cls_input, cls_model, "classification")
    channels = cls_input.channels if channels is None else channels
    image = keras.Input((None, None, channels), name="image")

    x = _equalised(image, seg_input, "equalize_for_segmenter")
    x = keras.layers.Resizing(*seg_input.input_size, interpolation="area", name="resize_to_segmenter")(x)
    probabilities = seg_model(_match_channels(x, channels, seg_input.channels, "segmentation"))
    lung = UniteChannels(mask_channels, name="lung_probability")(probabilities)
    lung = keras.layers.Resizing(*cls_input.input_size, interpolation="bilinear", name="lung_to_classifier")(lung)
    mask = BinarizeMask(threshold, name="binarize_mask")(lung)

    x = _equalised(image, cls_input, "equalize_for_classifier")
    x = keras.layers.Resizing(*cls_input.input_size, interpolation="area", name="resize_to_classifier")(x)
    x = ApplyMask(name="apply_mask")([x, mask])
    x = _equalised(x, cls_input, "equalize")
    classes = cls_model(_match_channels(x, channels, cls_input.channels, "classification"))
    outputs = {
        "probabilities": keras.layers.Identity(name="probabilities")(classes),
        "mask": ResizeLike("nearest", name="mask")([BinarizeMask(threshold, mask_channels, name="seg_mask")(
            probabilities), image]),
    }
    return keras.Model(image, outputs, name=name)


__all__ = ["build_segment_then_classify"]
