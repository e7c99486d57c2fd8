"""Image classifiers for (lung-masked) chest X-rays, built by name.

``build_classifier(name, num_classes, input_shape, weights, **options)`` returns a
compiled ``keras.Model``. Names (see :data:`CLASSIFIERS`):

* ``"cnn"``: a configurable from-scratch CNN (:func:`build_cnn`);
* ``"separable_cnn"``: the study's light SeparableConv2D model (:func:`build_separable_cnn`);
* transfer learning from ``tf.keras.applications`` (:func:`build_transfer`):
  ``"xception"`` (optionally truncated, :func:`build_xception`), ``"inceptionv3"``,
  ``"resnet50"``, ``"vgg16"``, ``"vgg19"``, ``"mobilenetv2"``,
  ``"efficientnetb0"``..``"efficientnetb7"``.

Conventions shared by every classifier:

* **Inputs** are float images in 0..1, ``(H, W, 1)`` or ``(H, W, 3)``. Transfer models
  repeat a grayscale channel (:class:`~cococxr.models.layers.GrayscaleToRGB`) and apply
  their application's own ``preprocess_input`` inside the model
  (:class:`~cococxr.models.layers.ApplicationPreprocess`), so callers never preprocess.
* **Outputs**: ``num_classes >= 2``: a softmax over the classes, trained with
  ``categorical_crossentropy`` (one-hot targets); ``num_classes=1`` or ``"binary"``: one
  sigmoid unit, ``binary_crossentropy``. Pass ``loss=`` to override (e.g.
  ``"sparse_categorical_crossentropy"`` for integer targets). The output layer is named
  ``"probabilities"``; metrics: accuracy.
* **Weights**: ``None``, ``"imagenet"`` (transfer models only; fails at once offline
  with :class:`~cococxr.errors.WeightsUnavailableError`) or a path to an ``.h5`` file
  (for transfer models, the application's weights, e.g. the cached ``*_notop.h5``; for
  ``cnn``/``separable_cnn``, weights saved from the same architecture).
* **Two-phase training**: the application is a nested model named ``"backbone"``;
  :func:`set_backbone_trainable` freezes or unfreezes it (or its top N layers) and
  :func:`fine_tune` does that and recompiles with a lower learning rate.
"""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from pathlib import Path

from cococxr._tf import keras
from cococxr.errors import ConfigError
from cococxr.models.io import get_compile_spec, register_compile_recipe, set_compile_spec
from cococxr.models.layers import ApplicationPreprocess, GrayscaleToRGB
from cococxr.models.segmentation import get_optimizer
from cococxr.models.weights import load_weights_file, resolve_weights

BACKBONE_NAME = "backbone"
WEIGHTS_HOST = "storage.googleapis.com"


@dataclass(frozen=True)
class Application:
    """A ``tf.keras.applications`` model usable as a backbone.

    Attributes:
        constructor: the attribute of ``keras.applications`` that builds it.
        cache_hint: a substring of its no-top imagenet weights file name in the Keras cache.
        min_size: the smallest height/width it accepts.
    """

    constructor: str
    cache_hint: str
    min_size: int = 32


APPLICATIONS = {
    "xception": Application("Xception", "xception_weights_tf_dim_ordering_tf_kernels_notop", 71),
    "inceptionv3": Application("InceptionV3",
                               "inception_v3_weights_tf_dim_ordering_tf_kernels_notop", 75),
    "resnet50": Application("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop"),
    "vgg16": Application("VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop"),
    "vgg19": Application("VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop"),
    "mobilenetv2": Application("MobileNetV2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels"),
    **{f"efficientnetb{i}": Application(f"EfficientNetB{i}", f"efficientnetb{i}_notop")
       for i in range(8)},
}

_POOLING = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _output_spec(num_classes) -> tuple[int, str, str]:
    """Return ``(units, activation, loss)`` for ``num_classes``."""
    if num_classes == "binary" or (_is_int(num_classes) and num_classes == 1):
        return 1, "sigmoid", "binary_crossentropy"
    if _is_int(num_classes) and num_classes >= 2:
        return int(num_classes), "softmax", "categorical_crossentropy"
    raise ConfigError(f"num_classes must be an integer >= 1 or 'binary', not {num_classes!r}")


def _check_input_shape(input_shape, min_size: int, what: str, rgb_only: bool = False) -> tuple:
    shape = tuple(input_shape)
    if (len(shape) != 3 or not all(_is_int(s) for s in shape) or min(shape[:2]) < min_size
            or shape[2] < 1 or (rgb_only and shape[2] not in (1, 3))):
        channels = "1 or 3" if rgb_only else "channels"
        raise ConfigError(f"{what}: input_shape must be (height, width, {channels}) with height "
                          f"and width integers >= {min_size}, not {input_shape!r}")
    return tuple(int(s) for s in shape)


def _pooling_layer(pooling: str, name: str):
    if pooling not in _POOLING:
        raise ConfigError(f"pooling must be one of {sorted(_POOLING)}, not {pooling!r}")
    return _POOLING[pooling](name=name)


def _accuracy(loss: str):
    if "binary" in loss:
        return keras.metrics.BinaryAccuracy(name="accuracy")
    if "sparse" in loss:
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return keras.metrics.CategoricalAccuracy(name="accuracy")


def _loss(name: str):
    try:
        return keras.losses.get(name)
    except ValueError as exc:
        raise ConfigError(f"unknown loss {name!r}; use a Keras loss name such as "
                          f"'categorical_crossentropy'") from exc


@register_compile_recipe("classifier")
def classifier_compile_kwargs(spec: dict) -> dict:
    """Build ``model.compile`` arguments from a classifier compile spec."""
    return {"optimizer": get_optimizer(spec["optimizer"], spec["lr"]),
            "loss": _loss(spec["loss"]), "metrics": [_accuracy(spec["loss"])]}


def compile_classifier(model, loss: str | None = None, optimizer: str = "adam",
                       learning_rate: float = 1e-3):
    """Compile a classifier and record the choice for :func:`cococxr.models.io.save_model`.

    Args:
        model: a model whose output layer gives class probabilities.
        loss: a Keras loss name; None: ``binary_crossentropy`` for one output unit,
            else ``categorical_crossentropy`` (one-hot targets).
        optimizer: ``"adam"``, ``"adamw"``, ``"nadam"``, ``"rmsprop"`` or ``"sgd"``
            (:data:`cococxr.models.segmentation.OPTIMIZERS`).
        learning_rate: the learning rate.

    Returns:
        ``model``, compiled with that loss, optimizer and an ``accuracy`` metric.
    """
    units = int(model.output_shape[-1])
    spec = {"recipe": "classifier", "optimizer": optimizer, "lr": float(learning_rate),
            "loss": loss or _output_spec(1 if units == 1 else units)[2]}
    model.compile(**classifier_compile_kwargs(spec))
    set_compile_spec(model, spec)
    return model


def _probabilities(x, num_classes):
    units, activation, _ = _output_spec(num_classes)
    return keras.layers.Dense(units, activation=activation, name="probabilities")(x)


def _load_scratch_weights(model, weights, what: str):
    if isinstance(weights, str) and weights.lower() == "imagenet":
        raise ConfigError(f"{what} is trained from scratch: there are no imagenet weights "
                          f"for it (use weights=None or a path to an .h5 file)")
    path = resolve_weights(weights, what)
    if path is not None:
        load_weights_file(model, path)


def build_cnn(num_classes, input_shape=(256, 256, 1), weights=None, *, n_blocks: int = 4,
              base_filters: int = 32, kernel_size: int = 3, convs_per_block: int = 2,
              activation: str = "relu", batch_norm: bool = True, dropout: float = 0.25,
              pooling: str = "avg", dense_units: int = 128, optimizer="adam",
              learning_rate: float = 1e-3, loss=None):
    """Build the classic tutorial CNN: conv blocks, then a dense head.

    Block ``b`` has ``convs_per_block`` convolutions of ``base_filters * 2**b`` filters
    (each Conv2D -> [BatchNorm] -> activation), then 2x2 max-pooling and dropout. The head
    is global pooling (``"avg"``, ``"max"`` or ``"flatten"``), Dense(``dense_units``) with
    dropout (skipped when 0), and the output layer.

    Args:
        num_classes: number of classes, or 1/``"binary"`` for one sigmoid unit.
        input_shape: ``(H, W, C)`` of the 0..1 input images.
        weights: None or a path to an .h5 file saved from the same architecture.
        optimizer: a Keras optimizer name; see :func:`compile_classifier`.
        loss: overrides the default loss (see the module docstring).

    Returns:
        The compiled model.
    """
    inputs = keras.Input(_check_input_shape(input_shape, 2 ** n_blocks, "cnn"), name="image")
    x = inputs
    for block in range(n_blocks):
        for conv in range(convs_per_block):
            x = keras.layers.Conv2D(base_filters * 2 ** block, kernel_size, padding="same",
                                    use_bias=not batch_norm, name=f"block{block + 1}_conv{conv + 1}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"block{block + 1}_bn{conv + 1}")(x)
            x = keras.layers.Activation(activation, name=f"block{block + 1}_act{conv + 1}")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block + 1}_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"block{block + 1}_dropout")(x)
    x = _pooling_layer(pooling, "head_pool")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation=activation, name="head_dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    model = keras.Model(inputs, _probabilities(x, num_classes), name="cnn")
    _load_scratch_weights(model, weights, "cnn")
    return compile_classifier(model, loss, optimizer, learning_rate)


def build_separable_cnn(num_classes, input_shape=(256, 256, 1), weights=None, *,
                        filters=(16, 32, 64, 128), dense_units: int = 16,
                        optimizer="adam", learning_rate: float = 1e-3, loss=None):
    """Build the study's light model of separable convolutions.

    Per entry of ``filters``: two SeparableConv2D (3x3, ReLU) -> BatchNorm -> 2x2
    max-pooling; then GlobalMaxPooling2D, Dense(``dense_units``, ReLU) and the output layer.

    Args:
        num_classes, input_shape, weights, optimizer, learning_rate, loss: see :func:`build_cnn`.
        filters: filters of each pair of separable convolutions.
        dense_units: units of the hidden dense layer.

    Returns:
        The compiled model.
    """
    shape = _check_input_shape(input_shape, 2 ** len(filters), "separable_cnn")
    inputs = keras.Input(shape, name="image")
    x = inputs
    for block, n_filters in enumerate(filters, start=1):
        for conv in (1, 2):
            x = keras.layers.SeparableConv2D(n_filters, 3, padding="same", activation="relu",
                                             name=f"block{block}_sepconv{conv}")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = keras.layers.GlobalMaxPooling2D(name="head_pool")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    model = keras.Model(inputs, _probabilities(x, num_classes), name="separable_cnn")
    _load_scratch_weights(model, weights, "separable_cnn")
    return compile_classifier(model, loss, optimizer, learning_rate)


def _backbone(application: str, shape: tuple, weights, truncate_at: int | None):
    """Build the application (no top) named ``BACKBONE_NAME``, optionally truncated."""
    spec = APPLICATIONS[application]
    if truncate_at is not None and not (_is_int(truncate_at) and truncate_at >= 2):
        raise ConfigError(f"{application}: truncate_at must be an integer >= 2, not {truncate_at!r}")
    app = getattr(keras.applications, spec.constructor)(
        include_top=False, weights="imagenet" if weights == "imagenet" else None,
        input_shape=shape)
    if isinstance(weights, Path):
        load_weights_file(app, weights)
    if truncate_at is not None and truncate_at > len(app.layers):
        raise ConfigError(f"{application}: truncate_at={truncate_at} exceeds its "
                          f"{len(app.layers)} layers")
    output = app.output if truncate_at is None else app.layers[truncate_at - 1].output
    return keras.Model(app.input, output, name=BACKBONE_NAME)


def _transfer_head(x, num_classes, *, conv_filters: int, dropout: float, pooling: str,
                   dense_units: int):
    """Conv2D + BatchNorm + Dropout + pooling (the study's head) or pooling + Dropout."""
    if conv_filters:
        x = keras.layers.Conv2D(conv_filters, 3, padding="same", activation="relu",
                                name="head_conv")(x)
        x = keras.layers.BatchNormalization(name="head_bn")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
        x = _pooling_layer(pooling, "head_pool")(x)
    else:
        x = _pooling_layer(pooling, "head_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    return _probabilities(x, num_classes)


def build_transfer(application: str, num_classes, input_shape=(256, 256, 1), weights=None, *,
                   truncate_at: int | None = None, conv_filters: int = 0, dropout: float = 0.2,
                   pooling: str = "avg", dense_units: int = 0, freeze_backbone: bool | None = None,
                   optimizer="adam", learning_rate: float = 1e-3, loss=None):
    """Build a transfer-learning classifier on a ``tf.keras.applications`` backbone.

    Graph: image (0..1) -> [GrayscaleToRGB] -> ApplicationPreprocess -> ``backbone``
    (nested model) -> head -> ``probabilities``. The head is pooling + Dropout + [Dense],
    or with ``conv_filters`` the study's Conv2D + BatchNorm + Dropout + pooling + [Dense].

    Args:
        application: a key of :data:`APPLICATIONS`.
        num_classes, input_shape, optimizer, learning_rate, loss: see :func:`build_cnn`;
            height and width must be at least the application's ``min_size``.
        weights: None, ``"imagenet"`` or a path to the application's .h5 weights.
        truncate_at: keep only the first N layers of the application (input layer included).
        conv_filters: filters of the head convolution (0: no head convolution).
        dropout: head dropout rate (0: none).
        pooling: ``"avg"``, ``"max"`` or ``"flatten"``.
        dense_units: units of an extra ReLU dense layer before the output (0: none).
        freeze_backbone: freeze the backbone for phase-one training; None freezes it
            exactly when pretrained weights were loaded.

    Returns:
        The compiled model.

    Raises:
        ConfigError: unknown application, bad shape or option.
        WeightsUnavailableError: imagenet weights offline, or a missing weights file.
    """
    if application not in APPLICATIONS:
        raise ConfigError(f"unknown application {application!r}; known: {sorted(APPLICATIONS)}")
    spec = APPLICATIONS[application]
    shape = _check_input_shape(input_shape, spec.min_size, application, rgb_only=True)
    resolved = resolve_weights(weights, f"classifier {application!r}", host=WEIGHTS_HOST,
                               cache_hint=spec.cache_hint)
    backbone = _backbone(application, shape[:2] + (3,), resolved, truncate_at)
    inputs = keras.Input(shape, name="image")
    x = GrayscaleToRGB(name="to_rgb")(inputs) if shape[2] == 1 else inputs
    x = backbone(ApplicationPreprocess(application, name="preprocess")(x))
    outputs = _transfer_head(x, num_classes, conv_filters=conv_filters, dropout=dropout,
                             pooling=pooling, dense_units=dense_units)
    model = keras.Model(inputs, outputs, name=f"{application}_classifier")
    if freeze_backbone is None:
        freeze_backbone = resolved is not None
    if freeze_backbone:
        set_backbone_trainable(model, False)
    return compile_classifier(model, loss, optimizer, learning_rate)


def build_xception(num_classes, input_shape=(256, 256, 1), weights=None, *,
                   truncate_at: int | None = None, conv_filters: int | None = None, **options):
    """Build an Xception classifier, optionally truncated as in the study.

    With ``truncate_at=N`` only the first N layers of Xception are kept and the head
    defaults to the study's Conv2D(128) + BatchNorm + Dropout + pooling + Dense; without
    it this is :func:`build_transfer` on the full Xception.

    Args:
        truncate_at: number of Xception layers to keep (input layer included); None: all.
        conv_filters: head convolution filters; None: 128 when truncated, else 0.
        num_classes, input_shape, weights, options: see :func:`build_transfer`.
    """
    if conv_filters is None:
        conv_filters = 128 if truncate_at is not None else 0
    return build_transfer("xception", num_classes, input_shape, weights,
                          truncate_at=truncate_at, conv_filters=conv_filters, **options)


CLASSIFIERS = {
    "cnn": build_cnn,
    "separable_cnn": build_separable_cnn,
    "xception": build_xception,
    **{name: functools.partial(build_transfer, name) for name in APPLICATIONS
       if name != "xception"},
}


def build_classifier(name: str, num_classes, input_shape=(256, 256, 1), weights=None,
                     **options):
    """Build a compiled classifier by name.

    Args:
        name: a key of :data:`CLASSIFIERS` (case-insensitive).
        num_classes: number of classes (softmax), or 1/``"binary"`` (one sigmoid unit).
        input_shape: ``(H, W, 1 or 3)``; inputs are float images in 0..1.
        weights: None, ``"imagenet"`` (transfer models) or a path to an .h5 file.
        **options: the builder's options (see :func:`build_cnn`,
            :func:`build_separable_cnn`, :func:`build_transfer`, :func:`build_xception`).

    Raises:
        ConfigError: unknown name or invalid option value.
        WeightsUnavailableError: see :func:`build_transfer`.
    """
    key = str(name).lower()
    if key not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier {name!r}; known: {', '.join(sorted(CLASSIFIERS))}")
    _output_spec(num_classes)  # fail before building anything
    return CLASSIFIERS[key](num_classes, input_shape, weights, **options)


def get_backbone(model):
    """Return the nested ``"backbone"`` model of a transfer classifier (ConfigError if none)."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError as exc:
        raise ConfigError(f"model {model.name!r} has no nested {BACKBONE_NAME!r} model; "
                          f"only transfer-learning classifiers have one") from exc


def set_backbone_trainable(model, trainable: bool | int, *, freeze_batchnorm: bool = True):
    """Freeze or unfreeze the backbone of a transfer classifier.

    Recompile the model afterwards for the change to affect training (:func:`fine_tune`
    does both).

    Args:
        model: a model built by :func:`build_transfer` (or loaded from one).
        trainable: False freezes the whole backbone; True unfreezes it; an integer N
            unfreezes only its last N layers.
        freeze_batchnorm: when unfreezing, keep BatchNormalization layers frozen (they
            then run in inference mode, the usual choice when fine-tuning pretrained weights).

    Returns:
        The backbone model.
    """
    backbone = get_backbone(model)
    if isinstance(trainable, bool):
        backbone.trainable = trainable
        if not trainable:
            return backbone
        first_trainable = 0
    elif _is_int(trainable) and trainable >= 0:
        backbone.trainable = True
        first_trainable = len(backbone.layers) - trainable
    else:
        raise ConfigError(f"trainable must be a bool or a number of top layers >= 0, "
                          f"not {trainable!r}")
    for index, layer in enumerate(backbone.layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= first_trainable and not (freeze_batchnorm and is_bn)
    return backbone


def fine_tune(model, learning_rate: float = 1e-5, n_top_layers: int | None = None, *,
              freeze_batchnorm: bool = True):
    """Unfreeze the backbone (or its top layers) and recompile with a lower learning rate.

    The optimizer name and loss recorded by :func:`compile_classifier` are kept (a model
    without that record gets Adam and the default loss); the optimizer starts afresh.

    Args:
        model: a transfer classifier.
        learning_rate: the new learning rate.
        n_top_layers: unfreeze only the last N backbone layers; None: all of them.
        freeze_batchnorm: see :func:`set_backbone_trainable`.

    Returns:
        The same model, recompiled.
    """
    set_backbone_trainable(model, True if n_top_layers is None else n_top_layers,
                           freeze_batchnorm=freeze_batchnorm)
    spec = get_compile_spec(model) or {}
    return compile_classifier(model, spec.get("loss"), spec.get("optimizer", "adam"),
                              learning_rate)


__all__ = [
    "CLASSIFIERS",
    "APPLICATIONS",
    "BACKBONE_NAME",
    "build_classifier",
    "build_cnn",
    "build_separable_cnn",
    "build_transfer",
    "build_xception",
    "get_backbone",
    "set_backbone_trainable",
    "fine_tune",
    "compile_classifier",
]
