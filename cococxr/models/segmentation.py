"""Segmentation models: any ``segmentation_models`` architecture/backbone, or a plain U-Net.

``build_segmentation_model("unet", backbone="efficientnetb3", classes=3)`` builds a
tf-keras model whose output has one channel per class (sigmoid by default, so classes
may overlap; pass ``activation="softmax"`` for mutually exclusive classes).

Grayscale input: ``input_shape=(H, W, 1)`` builds the backbone with a one-channel first
convolution (no wrapper or Lambda layer, so the model saves and loads like any other).
With ``encoder_weights="imagenet"`` the three-channel imagenet model is built first and
its first-convolution kernels are summed over the RGB axis (rescaled by ``3 / C`` for
``C`` channels) into the one-channel model, the usual way to reuse RGB filters; an input
BatchNormalization (ResNet backbones) gets the mean of its RGB statistics.

``arch="plain_unet"`` is the from-scratch U-Net of the chest X-ray lung segmentation
study, built without segmentation_models (``backbone`` is ignored).

The names (architectures, backbones, losses, optimizers) are in
:mod:`cococxr.models.registry`, which needs no TensorFlow; each architecture's factory
here (``make_unet``, ``make_fpn``, ``make_linknet``, ``make_pspnet``, ``make_plain_unet``)
is registered there by name, and :func:`build_segmentation_model` dispatches through it.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from cococxr._tf import keras
import segmentation_models as sm

from cococxr.errors import ConfigError, WeightsUnavailableError
from cococxr.models.io import register_compile_recipe, register_custom_object, set_compile_spec
from cococxr.models.registry import BACKBONES, architecture_names, get_architecture
from cococxr.models.weights import load_weights_file, resolve_weights

SM_ARCHITECTURES = {"unet": sm.Unet, "fpn": sm.FPN, "linknet": sm.Linknet, "pspnet": sm.PSPNet}
ARCHITECTURES = architecture_names()
PLAIN_UNET_FILTERS = (16, 32, 64, 128, 128)
SM_DOWNSAMPLING = 32
PSP_FACTORS = (4, 8, 16)

LOSSES = {
    "dice": sm.losses.dice_loss,
    "bce": sm.losses.binary_crossentropy,
    "focal": sm.losses.binary_focal_loss,
    "bce_dice": sm.losses.bce_dice_loss,
    "focal_dice": sm.losses.binary_focal_dice_loss,
    "jaccard": sm.losses.jaccard_loss,
}
OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}
METRIC_THRESHOLD = 0.5


def backbone_names() -> list[str]:
    """Return the backbone names segmentation_models knows (:data:`cococxr.models.registry.BACKBONES`)."""
    return list(BACKBONES)


def _check_divisible(arch: str, input_shape: tuple, factor: int) -> None:
    for size in input_shape[:2]:
        if size is not None and (size % factor or size < factor):
            raise ConfigError(f"{arch}: input height and width must be multiples of {factor}, "
                              f"got input_shape={input_shape}")


def _check_input_shape(arch: str, input_shape, kwargs: dict) -> tuple:
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not input_shape[2] or input_shape[2] < 1:
        raise ConfigError(f"{arch}: input_shape must be (height, width, channels), "
                          f"got {input_shape}")
    if arch == "pspnet":
        factor = kwargs.get("downsample_factor", 8)
        if factor not in PSP_FACTORS:
            raise ConfigError(f"pspnet: downsample_factor must be one of {PSP_FACTORS}, "
                              f"got {factor!r}")
        if None in input_shape[:2]:
            raise ConfigError(f"pspnet needs a fixed input size, got input_shape={input_shape}")
        _check_divisible(arch, input_shape, 6 * factor)
    elif arch == "plain_unet":
        _check_divisible(arch, input_shape, 2 ** len(kwargs.get("filters", PLAIN_UNET_FILTERS)))
    else:
        _check_divisible(arch, input_shape, SM_DOWNSAMPLING)
    return input_shape


def _check_activation(activation: str | None) -> str:
    activation = activation or "sigmoid"
    try:
        keras.activations.get(activation)
    except ValueError as exc:
        raise ConfigError(f"unknown activation {activation!r}: {exc}") from exc
    return activation


def build_segmentation_model(arch: str, backbone: str = "efficientnetb0", classes: int = 1,
                             activation: str | None = None,
                             input_shape: Sequence = (256, 256, 3),
                             encoder_weights=None, encoder_freeze: bool = False, **kwargs):
    """Build a segmentation model.

    Args:
        arch: ``"unet"``, ``"fpn"``, ``"linknet"``, ``"pspnet"`` (segmentation_models) or
            ``"plain_unet"``.
        backbone: any name of :func:`backbone_names` (ignored by ``plain_unet``).
        classes: output channels, one per class.
        activation: output activation; None means ``"sigmoid"`` (independent channels).
        input_shape: ``(H, W, C)``. H and W must be multiples of 32 (unet/fpn/linknet,
            or None for any size), of ``6 * downsample_factor`` (pspnet, default 48) or of
            ``2 ** len(filters)`` (plain_unet, default 32). C may be 1 (grayscale).
        encoder_weights: ``None``, ``"imagenet"`` (downloaded; fails fast offline with
            WeightsUnavailableError) or a path to an .h5 file whose same-named layers are
            loaded (shape mismatches skipped). For plain_unet only None or a path.
        encoder_freeze: make the encoder layers (except BatchNormalization) non-trainable.
        **kwargs: passed to the segmentation_models factory (e.g. ``decoder_filters``,
            ``downsample_factor``), or ``filters`` for plain_unet.

    Returns:
        An uncompiled tf-keras model with output shape ``(H, W, classes)``.

    Raises:
        ConfigError: unknown architecture, backbone, activation or a bad input shape.
        WeightsUnavailableError: imagenet weights while offline, or a missing weights file.
    """
    entry = get_architecture(arch)
    if not isinstance(classes, (int, np.integer)) or classes < 1:
        raise ConfigError(f"classes must be a positive integer, got {classes!r}")
    activation = _check_activation(activation)
    input_shape = _check_input_shape(entry.name, input_shape, kwargs)
    if entry.uses_backbone and backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; segmentation_models knows: "
                          f"{', '.join(BACKBONES)}")
    return entry.factory()(backbone, input_shape, int(classes), activation, encoder_weights, encoder_freeze,
                           **kwargs)


def make_unet(backbone: str, input_shape: tuple, classes: int, activation: str, encoder_weights=None,
              encoder_freeze: bool = False, **kwargs):
    """The registry's factory of ``unet``: segmentation_models' Unet (see :func:`build_segmentation_model`)."""
    return _build_sm("unet", backbone, input_shape, encoder_weights, classes=classes, activation=activation,
                     encoder_freeze=encoder_freeze, **kwargs)


def make_fpn(backbone: str, input_shape: tuple, classes: int, activation: str, encoder_weights=None,
             encoder_freeze: bool = False, **kwargs):
    """The registry's factory of ``fpn``: segmentation_models' FPN (see :func:`build_segmentation_model`)."""
    return _build_sm("fpn", backbone, input_shape, encoder_weights, classes=classes, activation=activation,
                     encoder_freeze=encoder_freeze, **kwargs)


def make_linknet(backbone: str, input_shape: tuple, classes: int, activation: str, encoder_weights=None,
                 encoder_freeze: bool = False, **kwargs):
    """The registry's factory of ``linknet``: segmentation_models' Linknet (see :func:`build_segmentation_model`)."""
    return _build_sm("linknet", backbone, input_shape, encoder_weights, classes=classes, activation=activation,
                     encoder_freeze=encoder_freeze, **kwargs)


def make_pspnet(backbone: str, input_shape: tuple, classes: int, activation: str, encoder_weights=None,
                encoder_freeze: bool = False, **kwargs):
    """The registry's factory of ``pspnet``: segmentation_models' PSPNet (see :func:`build_segmentation_model`)."""
    return _build_sm("pspnet", backbone, input_shape, encoder_weights, classes=classes, activation=activation,
                     encoder_freeze=encoder_freeze, **kwargs)


def _call_sm(arch: str, backbone: str, input_shape: tuple, weights, **kwargs):
    try:
        return SM_ARCHITECTURES[arch](backbone, input_shape=input_shape,
                                      encoder_weights=weights, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"{arch}/{backbone}: {exc}") from exc
    except Exception as exc:
        if weights == "imagenet" and "URL fetch failure" in str(exc):
            raise WeightsUnavailableError(
                f"{arch}/{backbone}: downloading imagenet weights failed ({exc}). Use "
                f"encoder_weights=None, or the path of a local .h5 weights file.") from exc
        raise


def _build_sm(arch: str, backbone: str, input_shape: tuple, encoder_weights, **kwargs):
    weights = resolve_weights(encoder_weights, f"{arch}/{backbone} encoder", cache_hint=backbone)
    if weights == "imagenet" and input_shape[2] != 3:
        rgb = _call_sm(arch, backbone, (*input_shape[:2], 3), "imagenet", **kwargs)
        model = _call_sm(arch, backbone, input_shape, None, **kwargs)
        transfer_weights(rgb, model)
        return model
    model = _call_sm(arch, backbone, input_shape, "imagenet" if weights == "imagenet" else None,
                     **kwargs)
    if weights not in (None, "imagenet"):
        load_weights_file(model, weights)
    return model


def adapt_input_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Turn a conv kernel ``(kh, kw, C_in, out)`` into one for ``channels`` input channels.

    The kernel is averaged over its input channels, repeated ``channels`` times and
    scaled by ``C_in / channels``, so a grey image repeated over the channels gives the
    same response as before (for 3 -> 1 this is the sum over RGB).
    """
    mean = kernel.mean(axis=2, keepdims=True) * (kernel.shape[2] / channels)
    return np.repeat(mean, channels, axis=2)


def _adapted(src: np.ndarray, dst_shape: tuple) -> np.ndarray | None:
    if src.shape == dst_shape:
        return src
    if src.ndim == 1 and len(dst_shape) == 1:  # per-input-channel statistics (input BN)
        return np.full(dst_shape, src.mean(), dtype=src.dtype)
    same_but_inputs = (src.ndim == 4 and len(dst_shape) == 4
                       and src.shape[:2] == dst_shape[:2] and src.shape[3] == dst_shape[3])
    return adapt_input_kernel(src, dst_shape[2]) if same_but_inputs else None


def transfer_weights(src, dst) -> int:
    """Copy weights layer by layer (same names) from ``src`` to ``dst``.

    The two models are meant to be the same architecture built for different input
    channels: kernels that differ only in their number of input channels are adapted
    with :func:`adapt_input_kernel`, per-input-channel vectors (an input
    BatchNormalization, as in the ResNets) become their mean; layers that still do not
    fit are left alone.

    Returns:
        The number of layers copied.
    """
    copied = 0
    src_layers = {layer.name: layer for layer in src.layers}
    for layer in dst.layers:
        other = src_layers.get(layer.name)
        if other is None or not layer.weights or len(other.weights) != len(layer.weights):
            continue
        values = [_adapted(w, tuple(d.shape)) for w, d in zip(other.get_weights(), layer.weights)]
        if all(v is not None for v in values):
            layer.set_weights(values)
            copied += 1
    return copied


def _conv_block(x, filters: int, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
    return x


def build_plain_unet(input_shape: Sequence = (256, 256, 1), classes: int = 1,
                     activation: str = "sigmoid", filters: Sequence[int] = PLAIN_UNET_FILTERS):
    """Build the from-scratch U-Net of the chest X-ray study.

    Encoder: one block per entry of ``filters`` (two 3x3 ReLU convs, then 2x2 max-pool),
    16 -> 128 filters by default; a bottleneck block with ``filters[-1]`` filters; decoder:
    per level, ``UpSampling2D`` x2, concatenation with the encoder block of that level and
    two 3x3 convs with that level's filters; head: 1x1 conv with ``activation``.

    Returns:
        An uncompiled model named ``plain_unet``.
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, skips = inputs, []
    for level, n in enumerate(filters):
        x = _conv_block(x, n, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_block(x, filters[-1], "bottleneck")
    for level in reversed(range(len(filters))):
        x = keras.layers.UpSampling2D(2, name=f"up{level}_upsample")(x)
        x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = _conv_block(x, filters[level], f"up{level}")
    outputs = keras.layers.Conv2D(classes, 1, activation=activation, name="mask")(x)
    return keras.Model(inputs, outputs, name="plain_unet")


def make_plain_unet(backbone, input_shape: tuple, classes: int, activation: str, encoder_weights=None,
                    encoder_freeze: bool = False, **kwargs):
    """The registry's factory of ``plain_unet`` (``backbone`` is ignored; only ``filters=...`` is taken).

    ``encoder_weights`` is None or the path of an .h5 file saved from a plain_unet;
    ``encoder_freeze`` freezes the encoder blocks (``down*`` layers).
    """
    unknown = set(kwargs) - {"filters"}
    if unknown:
        raise ConfigError(f"plain_unet: unexpected arguments {sorted(unknown)} "
                          f"(it only takes filters=...)")
    if isinstance(encoder_weights, str) and encoder_weights.lower() == "imagenet":
        raise ConfigError("plain_unet has no pretrained weights: use encoder_weights=None or "
                          "the path of an .h5 file saved from a plain_unet")
    path = resolve_weights(encoder_weights, "plain_unet")
    model = build_plain_unet(input_shape, classes, activation, **kwargs)
    if path is not None:
        load_weights_file(model, path)
    if encoder_freeze:
        for layer in model.layers:
            layer.trainable = not layer.name.startswith("down")
    return model


def get_loss(name: str):
    """Return the segmentation_models loss called ``name`` (a key of :data:`LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose one of {list(LOSSES)}") from None


def _metric_suffix(name) -> str:
    return re.sub(r"\W+", "_", str(name)).strip("_") or "class"


def get_metrics(classes: int | Sequence[str], threshold: float = METRIC_THRESHOLD) -> list:
    """Return IoU and F1 metrics (segmentation_models, binarised at ``threshold``).

    Args:
        classes: the number of output channels, or their names in channel order.
        threshold: probability above which a pixel counts as foreground.

    Returns:
        ``iou_score`` and ``f1-score`` over all channels, plus ``iou_<name>`` and
        ``f1_<name>`` per channel when there are several (names default to ``class<k>``).
    """
    names = [f"class{k}" for k in range(classes)] if isinstance(classes, int) else list(classes)
    metrics = [sm.metrics.IOUScore(threshold=threshold), sm.metrics.FScore(threshold=threshold)]
    if len(names) > 1:
        for k, name in enumerate(names):
            suffix = _metric_suffix(name)
            metrics.append(sm.metrics.IOUScore(threshold=threshold, class_indexes=[k],
                                               name=f"iou_{suffix}"))
            metrics.append(sm.metrics.FScore(threshold=threshold, class_indexes=[k],
                                             name=f"f1_{suffix}"))
    return metrics


def get_optimizer(name: str, lr: float):
    """Return a new tf-keras optimizer (a key of :data:`OPTIMIZERS`) with learning rate ``lr``."""
    try:
        return OPTIMIZERS[name](learning_rate=lr)
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}") from None


@register_compile_recipe("segmentation")
def segmentation_compile_kwargs(spec: dict) -> dict:
    """Build ``model.compile`` arguments from a segmentation compile spec."""
    return {
        "optimizer": get_optimizer(spec["optimizer"], spec["lr"]),
        "loss": get_loss(spec["loss"]),
        "metrics": get_metrics(spec["classes"], spec.get("threshold", METRIC_THRESHOLD)),
    }


def compile_segmentation_model(model, loss: str = "bce_dice", lr: float = 1e-3,
                               optimizer: str = "adam",
                               classes: int | Sequence[str] | None = None):
    """Compile ``model`` with a named loss, optimizer and the IoU/F1 metrics.

    The choice is recorded on the model (a compile spec) so that
    :func:`cococxr.models.io.save_model` / ``load_model`` can restore it.

    Args:
        model: a segmentation model.
        loss: a key of :data:`LOSSES`.
        lr: learning rate.
        optimizer: a key of :data:`OPTIMIZERS`.
        classes: class names in channel order (names the per-class metrics); defaults
            to the number of output channels.

    Returns:
        ``model``, compiled.
    """
    if classes is None:
        classes = int(model.output_shape[-1])
    spec = {"recipe": "segmentation", "loss": loss, "lr": float(lr), "optimizer": optimizer,
            "classes": classes if isinstance(classes, int) else list(classes),
            "threshold": METRIC_THRESHOLD}
    model.compile(**segmentation_compile_kwargs(spec))
    set_compile_spec(model, spec)
    return model


def _register_default_objects() -> None:
    for loss in LOSSES.values():
        if loss.__name__ not in ("binary_crossentropy",):  # a Keras built-in name
            register_custom_object(loss, name=loss.__name__)
    for metric in get_metrics(1):
        register_custom_object(metric, name=metric.__name__)


_register_default_objects()

__all__ = [
    "ARCHITECTURES",
    "LOSSES",
    "OPTIMIZERS",
    "backbone_names",
    "build_segmentation_model",
    "build_plain_unet",
    "make_unet",
    "make_fpn",
    "make_linknet",
    "make_pspnet",
    "make_plain_unet",
    "transfer_weights",
    "adapt_input_kernel",
    "get_loss",
    "get_metrics",
    "get_optimizer",
    "compile_segmentation_model",
    "segmentation_compile_kwargs",
]
