"""A trained segmentation model with the input settings it was trained with, and streaming prediction.

Evaluation and prediction must feed a model exactly what training fed it. A run folder's
``config.json`` (beside the model file) records the classes, input size, channels,
preprocessing and equalisation; :func:`input_spec` reads it, falls back to the model's
input shape, and lets explicit arguments override both. Images always go through
:class:`cococxr.sequences.CocoSegmentationSequence` (``subset="predict"``), the code
path training used, so the two cannot drift apart.

Predictions are made at the model's input size; the probabilities are resized back to
each image's original size with linear interpolation (``cv2.INTER_LINEAR``) and only then
thresholded, so masks and metrics are at the original resolution.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from cococxr.errors import ConfigError

CONFIG_FILE = "config.json"


@dataclass
class InputSpec:
    """What a model expects as input, and the names of its output channels."""

    classes: list[str]
    input_size: tuple[int, int]
    channels: int
    preprocessing: str | None = None
    equalize: str | None = None


@dataclass
class InferenceTimer:
    """Accumulates model-only inference time (the first, graph-tracing batch excluded)."""

    seconds: float = 0.0
    images: int = 0
    warmed_up: bool = field(default=False, repr=False)

    @property
    def ms_per_image(self) -> float | None:
        """Mean milliseconds per image, or None before any timed batch."""
        return 1000.0 * self.seconds / self.images if self.images else None


def load_segmentation_model(model_or_path):
    """Return ``(model, path or None)`` from a model object or a ``.h5``/``.keras`` file."""
    if isinstance(model_or_path, (str, os.PathLike)):
        from cococxr.models.io import load_model

        path = Path(model_or_path)
        return load_model(path, compile=False), path
    return model_or_path, None


def _run_config(model_path: Path | None) -> dict:
    if model_path is None or not (model_path.parent / CONFIG_FILE).is_file():
        return {}
    try:
        return json.loads((model_path.parent / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{model_path.parent / CONFIG_FILE}: not valid JSON ({exc})") from exc


def input_spec(model, model_path: str | os.PathLike | None = None, *, classes=None,
               input_size=None, channels=None, preprocessing=None, equalize=None) -> InputSpec:
    """Resolve a model's input settings.

    Order: explicit arguments (not None), then the run's ``config.json`` beside
    ``model_path``, then the model's input shape. ``preprocessing`` / ``equalize`` given
    as ``"none"`` mean None.

    Raises:
        ConfigError: classes unknown (no run config and none given), or a count that
            differs from the model's output channels.
    """
    run = _run_config(Path(model_path) if model_path else None)
    shape = model.input_shape
    height, width, model_channels = shape[1], shape[2], shape[3]
    size = input_size or run.get("input_size") or (height if height == width else None)
    if size is None:
        raise ConfigError("the model has no fixed square input size: give input_size")
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    names = classes or run.get("classes")
    n_out = int(model.output_shape[-1])
    if not names:
        raise ConfigError(f"which classes does the model predict? Give the {n_out} class name(s) "
                          f"(--classes); no {CONFIG_FILE} beside the model records them")
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != n_out:
        raise ConfigError(f"{len(names)} class name(s) {names} for a model with {n_out} output channel(s)")

    def pick(value, key):
        value = run.get(key) if value is None else value
        return None if isinstance(value, str) and value.lower() == "none" else value

    return InputSpec(classes=names, input_size=size,
                     channels=int(channels or run.get("channels") or model_channels),
                     preprocessing=pick(preprocessing, "preprocessing"),
                     equalize=pick(equalize, "equalize"))


def predict_sequence(coco, spec: InputSpec, image_ids: Iterable, batch_size: int = 8):
    """A ``subset="predict"`` Sequence over ``image_ids`` in order, preprocessed as in training."""
    from cococxr.sequences import CocoSegmentationSequence

    return CocoSegmentationSequence(
        coco, spec.classes, batch_size=batch_size, input_size=spec.input_size, channels=spec.channels,
        preprocessing=spec.preprocessing, equalize=spec.equalize, subset="predict", shuffle=False,
        image_ids=list(image_ids))


def resize_probabilities(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(h, w, K)`` probabilities to ``(height, width, K)`` with linear interpolation."""
    import cv2

    if prob.shape[:2] == (height, width):
        return prob
    out = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    return out[..., None] if out.ndim == 2 else out


def predict_probabilities(model, coco, spec: InputSpec, image_ids: Iterable, batch_size: int = 8,
                          timer: InferenceTimer | None = None,
                          progress: bool = True) -> Iterator[tuple[int, np.ndarray]]:
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

    Yields:
        float32 ``(H, W, K)`` probabilities, ``H, W`` the image record's size.
    """
    from tqdm.auto import tqdm

    sequence = predict_sequence(coco, spec, image_ids, batch_size)
    for index in tqdm(range(len(sequence)), desc="predicting", unit="batch", disable=not progress):
        batch = sequence[index]
        if timer is not None and not timer.warmed_up:
            model.predict_on_batch(batch)
            timer.warmed_up = True
        start = time.perf_counter()
        probs = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
        if timer is not None:
            timer.seconds += time.perf_counter() - start
            timer.images += len(batch)
        for image_id, prob in zip(sequence.batch_image_ids(index), probs):
            record = coco.imgs[image_id]
            yield image_id, resize_probabilities(prob, int(record["height"]), int(record["width"]))


__all__ = [
    "CONFIG_FILE",
    "InputSpec",
    "InferenceTimer",
    "load_segmentation_model",
    "input_spec",
    "predict_sequence",
    "resize_probabilities",
    "predict_probabilities",
]
