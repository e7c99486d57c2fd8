"""Segmentation inference: a trained model, its input settings, streaming prediction and lung masks.

Images always go through :class:`cococxr.sequences.CocoSegmentationSequence`
(``subset="predict"``), the code path training used, preprocessed as the model's card
(:func:`cococxr.pipelines.engine.cards.input_spec`) says, so the two cannot drift apart.
Predictions are made at the model's input size; the probabilities are resized back to
each image's original size with linear interpolation (``cv2.INTER_LINEAR``) and only then
thresholded, so masks and metrics are at the original resolution.

:class:`LungMasker` predicts the lungs of a classifier's batch (``mask_with`` a
segmentation model file).
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

from cococxr._tf import tf
from cococxr.errors import ConfigError
from cococxr.models.io import load_model
from cococxr.pipelines.engine.cards import InputSpec, input_spec
from cococxr.pipelines.engine.timing import InferenceTimer
from cococxr.preprocess import clahe, equalize_hist
from cococxr.sequences import CocoSegmentationSequence


def load_segmentation_model(model_or_path):
    """Return ``(model, path or None)`` from a model object or a ``.h5``/``.keras`` file."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        return load_model(path, compile=False), path
    return model_or_path, None


def predict_sequence(coco, spec: InputSpec, image_ids: Iterable, batch_size: int = 8):
    """A ``subset="predict"`` Sequence over ``image_ids`` in order, preprocessed as in training."""
    return CocoSegmentationSequence(
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
    """Lung probabilities of a batch from a segmentation model (the ``mask_with`` callable).

    The batch (the classifier's input: float ``(B, H, W, C)`` in 0..1) is resized to the
    segmentation model's input (bilinear), given its channel count, equalisation and
    preprocessing as recorded in its run's ``config.json``, and predicted; the
    probabilities of the chosen classes are united (maximum) and resized back.

    The maps are remembered (float16, least recently used first out) under a hash of the
    image they were predicted from: the Sequence masks the same prepared image every
    epoch (augmentation comes after masking), so the U-Net runs once per image.

    Args:
        model_path: the segmentation model file (``.h5`` / ``.keras``).
        mask_classes: its classes united into the mask; when none of its class names is
            listed, a one-channel model's only channel is used.
        cache_size: maps remembered (1024 maps of 224x224 take 100 MB).

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
        except ConfigError:  # no config.json beside it: name the channels
            self.spec = input_spec(self.model, path, classes=[f"channel_{k}" for k in range(n_out)])
        self.channels = [k for k, name in enumerate(self.spec.classes) if name in set(mask_classes)]
        if not self.channels and n_out == 1:
            self.channels = [0]
        if not self.channels:
            raise ConfigError(f"segmentation model {model_path} predicts {self.spec.classes}; none is in "
                              f"mask_classes {list(mask_classes)}")
        self._preprocess = None
        if self.spec.preprocessing:
            import segmentation_models as sm  # deferred: loads its backbone zoo, needed for preprocessing only

            self._preprocess = sm.get_preprocessing(self.spec.preprocessing)

    def _model_input(self, batch: np.ndarray) -> np.ndarray:
        x = tf.image.resize(batch, self.spec.input_size, method="bilinear").numpy().clip(0.0, 1.0)
        if x.shape[3] != self.spec.channels:
            x = np.repeat(x, 3, axis=3) if self.spec.channels == 3 else x.mean(axis=3, keepdims=True)
        if self.spec.equalize:
            equalizer = {"hist": equalize_hist, "clahe": clahe}[self.spec.equalize]
            x = np.stack([equalizer(np.round(im * 255).astype(np.uint8)) for im in x]).astype(np.float32) / 255
            x = x.reshape(len(batch), *self.spec.input_size, self.spec.channels)
        if self._preprocess is not None:
            x = np.asarray(self._preprocess(x * 255.0), np.float32)
        return x.astype(np.float32)

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        probs = np.asarray(self.model.predict_on_batch(self._model_input(batch)), np.float32)
        probs = probs[..., self.channels].max(axis=3, keepdims=True)
        return tf.image.resize(probs, batch.shape[1:3], method="bilinear").numpy()[..., 0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Lung probabilities ``(B, H, W)`` for a float batch ``(B, H, W, C)`` in 0..1."""
        batch = np.ascontiguousarray(batch, np.float32)
        keys = [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in batch]
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [k for k, key in enumerate(keys) if key not in found]
        if missing:
            for k, prob in zip(missing, self._predict(batch[missing])):
                found[keys[k]] = prob.astype(np.float16)
        for key in keys:
            self._cache[key] = found[key]
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([found[key] for key in keys]).astype(np.float32)


__all__ = [
    "load_segmentation_model",
    "predict_sequence",
    "resize_probabilities",
    "predict_probabilities",
    "LungMasker",
]
