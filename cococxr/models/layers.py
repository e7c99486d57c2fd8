"""Serialisable Keras layers used inside cococxr models.

Every layer here has a ``get_config`` and is registered with
:func:`cococxr.models.io.register_custom_object`, so models that contain them save to
``.keras``/``.h5`` and load back with :func:`cococxr.models.io.load_model`.

* :class:`HistogramEqualization`: ``cv2.equalizeHist`` in TensorFlow ops, per image and
  channel;
* :class:`GrayscaleToRGB`: repeat a single channel three times;
* :class:`ApplicationPreprocess`: a ``tf.keras.applications`` model's own
  ``preprocess_input`` for 0..1 images;
* :class:`BinarizeMask`, :class:`UniteChannels`, :class:`ApplyMask`, :class:`ResizeLike`:
  the steps of the segment-then-classify composite.
"""
from __future__ import annotations

from cococxr._tf import keras, tf
from cococxr.errors import ConfigError
from cococxr.models.io import register_custom_object

VALUE_RANGES = ((0.0, 1.0), (0.0, 255.0))


def _value_range(value_range) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in value_range)
    except (TypeError, ValueError):
        pair = None
    if pair not in VALUE_RANGES:
        raise ConfigError(f"value_range must be (0, 1) or (0, 255), not {value_range!r}")
    return pair


def _equalization_luts(levels: tf.Tensor) -> tf.Tensor:
    """Return cv2.equalizeHist look-up tables (float32 ``(n, 256)``) for ``(n, pixels)`` levels.

    cv2 computes ``lut[i] = round_half_even((cdf[i] - cdf_min) * (255 / (total - cdf_min)))``
    in float32, where ``cdf_min`` is the count of the darkest level present; a constant
    image is left unchanged (identity table).
    """
    hist = tf.math.bincount(levels, minlength=256, maxlength=256, axis=-1)
    cdf = tf.cumsum(hist, axis=-1)
    total = cdf[:, -1:]
    cdf_min = tf.reduce_min(tf.where(hist > 0, cdf, total), axis=-1, keepdims=True)
    scale = tf.math.divide_no_nan(255.0, tf.cast(total - cdf_min, tf.float32))
    lut = tf.round(tf.cast(tf.maximum(cdf - cdf_min, 0), tf.float32) * scale)
    identity = tf.range(256, dtype=tf.float32)[tf.newaxis]
    return tf.where(total == cdf_min, identity, tf.clip_by_value(lut, 0.0, 255.0))


def equalize_histogram(images, value_range=(0, 1)) -> tf.Tensor:
    """Equalise the histogram of each image and channel, exactly like ``cv2.equalizeHist``.

    Args:
        images: ``(batch, height, width, channels)`` tensor with values in ``value_range``.
        value_range: ``(0, 1)`` (float images) or ``(0, 255)``. Values are clipped to the
            range and quantised to 256 levels by rounding (``round(x * 255)`` for 0..1).

    Returns:
        float32 tensor of the same shape, in ``value_range``. On uint8-valued input with
        ``value_range=(0, 255)`` it equals ``cv2.equalizeHist`` channel by channel.
    """
    top = _value_range(value_range)[1]
    x = tf.cast(images, tf.float32)
    levels = tf.cast(tf.round(tf.clip_by_value(x * (255.0 / top), 0.0, 255.0)), tf.int32)
    shape = tf.shape(levels)
    rows = tf.reshape(tf.transpose(levels, [0, 3, 1, 2]), [shape[0] * shape[3], -1])
    equalised = tf.gather(_equalization_luts(rows), rows, batch_dims=1)
    equalised = tf.reshape(equalised, [shape[0], shape[3], shape[1], shape[2]])
    return tf.transpose(equalised, [0, 2, 3, 1]) * (top / 255.0)


@register_custom_object
class HistogramEqualization(keras.layers.Layer):
    """Histogram equalisation per image and channel (``cv2.equalizeHist`` semantics).

    Targets: images ``(batch, H, W, C)``, any float or integer dtype; output float32 in
    the same ``value_range`` as the input. No weights; not differentiable.

    Args:
        value_range: ``(0, 1)`` (default) or ``(0, 255)``; see :func:`equalize_histogram`.
    """

    def __init__(self, value_range=(0, 1), **kwargs):
        super().__init__(**kwargs)
        self.value_range = _value_range(value_range)

    def call(self, inputs):
        return equalize_histogram(inputs, self.value_range)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value_range": list(self.value_range)}


@register_custom_object
class GrayscaleToRGB(keras.layers.Layer):
    """Repeat a single-channel image three times: ``(B, H, W, 1) -> (B, H, W, 3)``."""

    def build(self, input_shape):
        if input_shape[-1] != 1:
            raise ConfigError(f"GrayscaleToRGB expects 1 channel, got input shape {input_shape}")
        super().build(input_shape)

    def call(self, inputs):
        return tf.repeat(inputs, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([3])


def _preprocess_function(application: str):
    apps = keras.applications
    family = "efficientnet" if application.startswith("efficientnet") else application
    modules = {
        "xception": apps.xception, "inceptionv3": apps.inception_v3,
        "resnet50": apps.resnet50, "vgg16": apps.vgg16, "vgg19": apps.vgg19,
        "mobilenetv2": apps.mobilenet_v2, "efficientnet": apps.efficientnet,
    }
    if family not in modules:
        raise ConfigError(f"no preprocessing known for application {application!r}; "
                          f"expected one of {sorted(modules)} or efficientnetb0..b7")
    return modules[family].preprocess_input


@register_custom_object
class ApplicationPreprocess(keras.layers.Layer):
    """Apply a ``tf.keras.applications`` model's ``preprocess_input`` to 0..1 RGB images.

    The input is scaled to 0..255 (``x * 255 / input_max``) and passed to the application's
    own function: ``[-1, 1]`` for Xception/InceptionV3/MobileNetV2, caffe BGR mean
    subtraction for ResNet50/VGG, unchanged 0..255 for EfficientNet (which normalises
    inside the network).

    Args:
        application: ``"xception"``, ``"inceptionv3"``, ``"resnet50"``, ``"vgg16"``,
            ``"vgg19"``, ``"mobilenetv2"`` or ``"efficientnetb0"``..``"efficientnetb7"``.
        input_max: the value of white in the input (1.0 for 0..1 images).
    """

    def __init__(self, application: str, input_max: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self._preprocess = _preprocess_function(application)
        self.application = application
        self.input_max = float(input_max)

    def call(self, inputs):
        return self._preprocess(tf.cast(inputs, tf.float32) * (255.0 / self.input_max))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "application": self.application,
                "input_max": self.input_max}


@register_custom_object
class BinarizeMask(keras.layers.Layer):
    """Turn segmentation probabilities into one binary mask channel.

    ``(B, H, W, K) -> (B, H, W, 1)`` float32: 1 where any selected channel is
    ``> threshold``, else 0 (the union of the selected classes).

    Args:
        threshold: probability above which a pixel is foreground.
        channels: indices of the channels to unite (e.g. the lung classes); None: all.
    """

    def __init__(self, threshold: float = 0.5, channels=None, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.channels = None if channels is None else [int(c) for c in channels]

    def call(self, inputs):
        probs = inputs if self.channels is None else tf.gather(inputs, self.channels, axis=-1)
        return tf.cast(tf.reduce_max(probs, axis=-1, keepdims=True) > self.threshold, tf.float32)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([1])

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "channels": self.channels}


@register_custom_object
class UniteChannels(keras.layers.Layer):
    """The maximum of selected probability channels: ``(B, H, W, K) -> (B, H, W, 1)``.

    Args:
        channels: indices of the channels to unite; None: all.
    """

    def __init__(self, channels=None, **kwargs):
        super().__init__(**kwargs)
        self.channels = None if channels is None else [int(c) for c in channels]

    def call(self, inputs):
        probs = inputs if self.channels is None else tf.gather(inputs, self.channels, axis=-1)
        return tf.reduce_max(tf.cast(probs, tf.float32), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([1])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@register_custom_object
class ApplyMask(keras.layers.Layer):
    """Multiply images by a mask: ``[(B, H, W, C), (B, H, W, 1)] -> (B, H, W, C)``."""

    def call(self, inputs):
        image, mask = inputs
        return tf.cast(image, tf.float32) * tf.cast(mask, tf.float32)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register_custom_object
class ResizeLike(keras.layers.Layer):
    """Resize images to the height and width of a reference tensor.

    ``[(B, h, w, C), (B, H, W, *)] -> (B, H, W, C)`` with ``tf.image.resize``.

    Args:
        method: a ``tf.image.resize`` method name; ``"nearest"`` keeps masks binary.
    """

    def __init__(self, method: str = "nearest", **kwargs):
        super().__init__(**kwargs)
        self.method = method

    def call(self, inputs):
        images, reference = inputs
        return tf.image.resize(images, tf.shape(reference)[1:3], method=self.method)

    def compute_output_shape(self, input_shape):
        images, reference = (tf.TensorShape(s) for s in input_shape)
        return reference[:3].concatenate(images[-1:])

    def get_config(self):
        return {**super().get_config(), "method": self.method}


__all__ = [
    "HistogramEqualization",
    "GrayscaleToRGB",
    "ApplicationPreprocess",
    "BinarizeMask",
    "UniteChannels",
    "ApplyMask",
    "ResizeLike",
    "equalize_histogram",
]
