"""Grad-CAM and Grad-CAM++: where a classifier looked, and how much of it was in the lungs.

* :func:`grad_cam` / :func:`grad_cam_plus_plus`: heatmaps ``(N, H, W)`` float32 in 0..1
  at the input resolution, for a chosen layer (looked up in nested models too) or the
  last convolutional feature map found automatically (:func:`last_conv_layer`);
* :func:`overlay_heatmap`: a JET-coloured overlay as uint8 RGB;
* :func:`in_mask_energy_share`: the share of heatmap energy inside a mask. A classifier
  of lung-masked images that looks outside the lungs (text labels, borders, devices) is
  learning a shortcut: this number exposes it;
* :func:`write_overlays`: overlay PNGs for a list of images (atomic writes).

Heatmaps are computed eagerly with ``tf.GradientTape``: the target layer's output is
recorded during one forward pass, which works for layers of nested models (the
``backbone`` of transfer classifiers) without rebuilding the model.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import cv2
import numpy as np

from cococxr._tf import keras, tf
from cococxr.atomic import atomic_write_bytes
from cococxr.errors import ConfigError
from cococxr.paths import safe_join


def _sublayers(model):
    return getattr(model, "layers", [])


def _depth_first(model):
    """Yield every layer of ``model``, each nested model followed by its own layers."""
    for layer in _sublayers(model):
        yield layer
        yield from _depth_first(layer)


def _from_output(model):
    """Yield every layer from the output backwards, a nested model's layers before itself."""
    for layer in reversed(_sublayers(model)):
        yield from _from_output(layer)
        yield layer


def find_layer(model, name: str):
    """Return the layer called ``name`` in ``model`` or any model nested in it.

    Raises:
        ConfigError: no such layer.
    """
    for layer in _depth_first(model):
        if layer.name == name:
            return layer
    raise ConfigError(f"no layer named {name!r} in model {model.name!r} or its nested models")


def _is_feature_map(layer) -> bool:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # a shared nested model has several outputs
        return False
    return shape.rank == 4 and not isinstance(layer, keras.layers.InputLayer)


def last_conv_layer(model):
    """Return the last layer with a 4-D ``(N, h, w, C)`` output, searching nested models.

    That is the final convolutional feature map (after its activation/normalisation),
    the usual Grad-CAM target. Layers are scanned from the output backwards; a nested
    model is searched inside before it is considered as a whole.

    Raises:
        ConfigError: the model has no 4-D layer.
    """
    for layer in _from_output(model):
        if _is_feature_map(layer):
            return layer
    raise ConfigError(f"model {model.name!r} has no convolutional (4-D) layer for Grad-CAM")


@contextlib.contextmanager
def _recording(layer, tape):
    """Record (and watch on ``tape``) every output of ``layer`` while the block runs."""
    outputs = []
    own = "call" in vars(layer)
    original = layer.call

    def call(*args, **kwargs):
        result = original(*args, **kwargs)
        tape.watch(result)
        outputs.append(result)
        return result

    layer.call = call
    try:
        yield outputs
    finally:
        if own:
            layer.call = original
        else:
            del layer.call


def _as_batch(images) -> tuple[np.ndarray, bool]:
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        return batch[np.newaxis], True
    if batch.ndim != 4:
        raise ConfigError(f"images must be (H, W, C) or (N, H, W, C), got shape {batch.shape}")
    return batch, False


def _class_scores(predictions, class_index):
    """Return the per-image score of the class to explain (default: the predicted one)."""
    if isinstance(predictions, (list, tuple, dict)):
        raise ConfigError("Grad-CAM needs a model with a single (N, classes) output")
    n, units = predictions.shape
    if class_index is None:
        probs = predictions.numpy()
        chosen = (probs[:, 0] >= 0.5).astype(int) if units == 1 else probs.argmax(-1)
    else:
        chosen = np.broadcast_to(np.asarray(class_index, dtype=int), (n,))
    if units == 1:  # sigmoid: class 1 is the output, class 0 its opposite
        return predictions[:, 0] * np.where(chosen == 1, 1.0, -1.0).astype(np.float32)
    return tf.gather(predictions, chosen, axis=1, batch_dims=1)


def _activations_and_gradients(model, images, class_index, layer_name):
    layer = last_conv_layer(model) if layer_name is None else find_layer(model, layer_name)
    with tf.GradientTape() as tape, _recording(layer, tape) as recorded:
        predictions = model(images, training=False)
        scores = _class_scores(predictions, class_index)
    if not recorded:
        raise ConfigError(f"layer {layer.name!r} was not called when running the model")
    activations = recorded[-1]
    return activations.numpy(), tape.gradient(scores, activations).numpy()


def _to_heatmaps(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale each ``(h, w)`` map to 0..1 by its maximum and resize to ``size`` (bilinear)."""
    cams = np.maximum(cams, 0.0)
    peak = cams.max(axis=(1, 2), keepdims=True)
    cams = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
    resized = tf.image.resize(cams[..., np.newaxis], size, method="bilinear").numpy()[..., 0]
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def _heatmaps(model, images, class_index, layer_name, weigh) -> np.ndarray:
    batch, single = _as_batch(images)
    activations, gradients = _activations_and_gradients(model, batch, class_index, layer_name)
    weights = weigh(activations, gradients)
    cams = np.einsum("nhwc,nc->nhw", activations, weights)
    heatmaps = _to_heatmaps(cams, batch.shape[1:3])
    return heatmaps[0] if single else heatmaps


def _grad_cam_weights(activations, gradients):
    return gradients.mean(axis=(1, 2))


def _grad_cam_plus_plus_weights(activations, gradients):
    grads2, grads3 = gradients ** 2, gradients ** 3
    denominator = 2.0 * grads2 + activations.sum(axis=(1, 2), keepdims=True) * grads3
    alphas = np.divide(grads2, denominator, out=np.zeros_like(grads2), where=denominator != 0)
    return (alphas * np.maximum(gradients, 0.0)).sum(axis=(1, 2))


def grad_cam(model, images, class_index=None, layer_name: str | None = None) -> np.ndarray:
    """Compute Grad-CAM heatmaps (Selvaraju et al., 2017).

    Args:
        model: a Keras model with one ``(N, classes)`` output (softmax or one sigmoid
            unit, where class 1 is the output and class 0 its opposite).
        images: ``(N, H, W, C)`` or one ``(H, W, C)`` image, as the model takes them.
        class_index: the class to explain: an int, one per image, or None for the
            predicted class.
        layer_name: the layer to explain (nested models are searched); None: the last
            convolutional feature map (:func:`last_conv_layer`).

    Returns:
        float32 heatmaps ``(N, H, W)`` (or ``(H, W)`` for one image) in 0..1, each scaled
        by its maximum; all zeros where no location supports the class.
    """
    return _heatmaps(model, images, class_index, layer_name, _grad_cam_weights)


def grad_cam_plus_plus(model, images, class_index=None,
                       layer_name: str | None = None) -> np.ndarray:
    """Compute Grad-CAM++ heatmaps (Chattopadhyay et al., 2018); arguments as :func:`grad_cam`.

    Uses the closed form for an exponential of the class score: pixel weights
    ``alpha = g**2 / (2 g**2 + sum(A) g**3)`` on the gradients ``g`` of the activations ``A``.
    """
    return _heatmaps(model, images, class_index, layer_name, _grad_cam_plus_plus_weights)


def _to_rgb8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = image / 65535.0
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.repeat(image[..., np.newaxis], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ConfigError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")


def overlay_heatmap(image, heatmap, alpha: float = 0.4) -> np.ndarray:
    """Blend a JET-coloured heatmap over an image.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or RGB ``(H, W, 3)``; uint8, uint16 or float in 0..1.
        heatmap: ``(h, w)`` in 0..1; resized (bilinear) to the image when sizes differ.
        alpha: weight of the heatmap colours (0: image only, 1: colours only).

    Returns:
        uint8 RGB ``(H, W, 3)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be within 0..1, got {alpha!r}")
    rgb = _to_rgb8(image)
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.round(heat * 255.0).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    blended = (1.0 - alpha) * rgb + alpha * colours
    return np.round(blended).clip(0, 255).astype(np.uint8)


def in_mask_energy_share(heatmap, mask):
    """Return the share of heatmap energy inside a mask: ``sum(heatmap[mask]) / sum(heatmap)``.

    Args:
        heatmap: non-negative ``(H, W)`` map, or a stack ``(..., H, W)``.
        mask: same shape; nonzero means inside.

    Returns:
        A float in 0..1 (an array of them for stacks). An all-zero heatmap has no energy
        to share: its share is NaN (no warning is raised; use ``np.nanmean`` to average).
    """
    heat = np.asarray(heatmap, dtype=np.float64)
    inside = np.asarray(mask) != 0
    if heat.shape != inside.shape:
        raise ConfigError(f"heatmap {heat.shape} and mask {inside.shape} shapes differ")
    total = np.asarray(heat.sum(axis=(-2, -1)))
    within = np.asarray((heat * inside).sum(axis=(-2, -1)))
    share = np.divide(within, total, out=np.full_like(total, np.nan), where=total > 0)
    return float(share) if share.ndim == 0 else share


def _png_name(name: str) -> str:
    return name if name.lower().endswith(".png") else f"{name}.png"


def write_overlays(out_dir: str | os.PathLike, images, heatmaps, names=None,
                   alpha: float = 0.4) -> list[Path]:
    """Write one overlay PNG (:func:`overlay_heatmap`) per image into ``out_dir``.

    Args:
        out_dir: the folder (created when missing).
        images: a sequence of images (see :func:`overlay_heatmap`).
        heatmaps: one heatmap per image.
        names: file names relative to ``out_dir`` (``.png`` is added when missing);
            default ``overlay_0000.png``, ``overlay_0001.png``...
        alpha: heatmap weight.

    Returns:
        The paths written, in order.
    """
    if len(images) != len(heatmaps):
        raise ConfigError(f"{len(images)} images but {len(heatmaps)} heatmaps")
    names = [f"overlay_{i:04d}" for i in range(len(images))] if names is None else list(names)
    if len(names) != len(images):
        raise ConfigError(f"{len(images)} images but {len(names)} names")
    paths = []
    for image, heatmap, name in zip(images, heatmaps, names):
        path = safe_join(out_dir, _png_name(name), "overlay name")
        rgb = overlay_heatmap(image, heatmap, alpha)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ConfigError(f"could not encode overlay {name!r} as PNG")
        atomic_write_bytes(path, png.tobytes())
        paths.append(path)
    return paths


__all__ = [
    "grad_cam",
    "grad_cam_plus_plus",
    "find_layer",
    "last_conv_layer",
    "overlay_heatmap",
    "in_mask_energy_share",
    "write_overlays",
]
