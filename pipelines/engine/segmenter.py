"""Segmentation inference: a trained model, its input settings, streaming prediction and lung masks.

Images always go through :class:`cococxr.batches.SegmentationBatches` (``subset="predict"``),
the batch core under the training Sequences, preprocessed as the model's card
(:func:`cococxr.pipelines.engine.cards.input_spec`) says, so the two cannot drift apart.
Predictions are made at the model's input size; the probabilities are resized back to
each image's original size with linear interpolation (``cv2.INTER_LINEAR``) and only then
thresholded, so masks and metrics are at the original resolution.

:class:`LungMasker` predicts the lungs of the images a classifier's Sequence decodes
(``mask_with`` a segmentation model file).
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm.auto import tqdm

from cococxr.batches import SegmentationBatches
from cococxr.errors import ConfigError
from cococxr.pipelines.engine.cards import InputSpec, input_spec
from cococxr.pipelines.engine.timing import InferenceTimer
from cococxr.model_input import input_size_pair

TORCH_SUFFIX = ".pt"


def load_segmentation_model(model_or_path):
    """Return ``(model, path or None)`` from a model object, a ``.h5``/``.keras`` or a TorchScript ``.pt`` file."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.suffix.lower() == TORCH_SUFFIX:
            from cococxr.models.torchscript import load_torchscript  # deferred: torch, optional

            return load_torchscript(path), path
        from cococxr.models.io import load_model  # deferred: imports TensorFlow, which a .pt model needs not

        return load_model(path, compile=False), path
    return model_or_path, None


def predict_sequence(coco, spec: InputSpec, image_ids: Iterable, batch_size: int = 8):
    """``subset="predict"`` batches over ``image_ids`` in order, preprocessed as in training."""
    return SegmentationBatches(
        coco, spec.classes, batch_size=batch_size, input_size=spec.input_size, channels=spec.channels,
        preprocessing=spec.preprocessing, equalize=spec.equalize, subset="predict", shuffle=False,
        image_ids=list(image_ids))


def resize_probabilities(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(h, w, K)`` probabilities to ``(height, width, K)`` with linear interpolation."""
    if prob.shape[:2] == (height, width):
        return prob
    out = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    return out[..., None] if out.ndim == 2 else out


def predict_probabilities(model, coco, spec: InputSpec, image_ids: Iterable, batch_size: int = 8,
                          timer: InferenceTimer | None = None, progress: bool = True,
                          flip_tta: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(image_id, probabilities)`` at each image's original size, batch by batch.

    Args:
        model: a tf-keras segmentation model (or any callable batch -> probabilities
            with ``predict_on_batch``).
        coco: :class:`cococxr.coco.CocoDataset` holding the images.
        spec: the model's input settings.
        image_ids: images to predict, in order.
        batch_size: images read and predicted at a time (memory stays one batch).
        timer: accumulates model-only time (the first batch is run once untimed).
        progress: show a tqdm bar.
        flip_tta: average the probabilities of each image and of its left-right mirror
            (mirrored back): test-time augmentation, twice the model time.

    Yields:
        float32 ``(H, W, K)`` probabilities, ``H, W`` the image record's size.
    """
    sequence = predict_sequence(coco, spec, image_ids, batch_size)
    for index in tqdm(range(len(sequence)), desc="predicting", unit="batch", disable=not progress):
        batch = sequence[index]
        if timer is not None and not timer.warmed_up:
            model.predict_on_batch(batch)
            timer.warmed_up = True
        start = time.perf_counter()
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
        if flip_tta:
            mirrored = np.asarray(model.predict_on_batch(batch[:, :, ::-1]), dtype=np.float32)
            probs = (probs + mirrored[:, :, ::-1]) / 2
        if timer is not None:
            timer.seconds += time.perf_counter() - start
            timer.images += len(batch)
        for image_id, prob in zip(sequence.batch_image_ids(index), probs):
            record = coco.imgs[image_id]
            yield image_id, resize_probabilities(prob, int(record["height"]), int(record["width"]))


class LungMasker:
    """Lung probabilities of decoded images from a segmentation model (a Sequence's ``mask_with``).

    Each decoded image is turned into the segmentation model's input by its card's
    :class:`~cococxr.model_input.ModelInput` (the path its training used: gray if asked,
    equalised at native size, resized, preprocessed), predicted, the probabilities of the
    chosen classes united (maximum) and resized to the size asked (linear).

    The maps are remembered (float32, as predicted: a rounded copy would move pixels across
    the 0.5 threshold; least recently used first out) under a hash of the decoded image and the size: a Sequence masks the same image every epoch
    (augmentation comes after masking), so the U-Net runs once per image.

    Args:
        model_path: the segmentation model file (``.h5`` / ``.keras`` / ``.pt``).
        mask_classes: its classes united into the mask; when none of its class names is
            listed, a one-channel model's only channel is used.
        cache_size: maps remembered (1024 maps of 224x224 take 200 MB).

    Raises:
        ConfigError: a several-channel model none of whose classes is in ``mask_classes``.
    """

    def __init__(self, model_path: str | os.PathLike, mask_classes=("lung",), cache_size: int = 1024):
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.model, path = load_segmentation_model(model_path)
        n_out = int(self.model.output_shape[-1])
        try:
            self.spec = input_spec(self.model, path)
        except ConfigError:  # no card beside it: name the channels
            self.spec = input_spec(self.model, path, classes=[f"channel_{k}" for k in range(n_out)])
        self.model_input = self.spec.model_input()
        self.channels = [k for k, name in enumerate(self.spec.classes) if name in set(mask_classes)]
        if not self.channels and n_out == 1:
            self.channels = [0]
        if not self.channels:
            raise ConfigError(f"segmentation model {model_path} predicts {self.spec.classes}; none is in "
                              f"mask_classes {list(mask_classes)}")

    def _predict(self, images: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
        probs = np.asarray(self.model.predict_on_batch(self.model_input(images)), np.float32)
        probs = probs[..., self.channels].max(axis=3, keepdims=True)
        return [resize_probabilities(prob, *size)[..., 0] for prob in probs]

    def mask_images(self, images, size) -> np.ndarray:
        """Lung probabilities ``(B, *size)`` of decoded images (any size, uint8/uint16)."""
        size = input_size_pair(size)
        keys = [hashlib.blake2b(np.ascontiguousarray(image).tobytes() + repr((image.shape, size)).encode(),
                                digest_size=16).digest() for image in images]
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [k for k, key in enumerate(keys) if key not in found]
        if missing:
            for k, prob in zip(missing, self._predict([images[k] for k in missing], size)):
                found[keys[k]] = prob.astype(np.float32)
        for key in keys:
            self._cache[key] = found[key]
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([found[key] for key in keys])


__all__ = [
    "load_segmentation_model",
    "predict_sequence",
    "resize_probabilities",
    "predict_probabilities",
    "LungMasker",
]
