"""The model cards: what a trained model needs beside its weights to be fed and read as in training.

Evaluation, prediction, the classifier's lung masking, Grad-CAM and the app must feed a
model exactly what training fed it.

* A segmentation model's card is its run's ``config.json`` (beside the model file): the
  classes, input size, channels, preprocessing and equalisation. :func:`input_spec` reads
  it into an :class:`InputSpec`, falls back to the model's input shape, and lets explicit
  arguments override both.
* A classifier's card is its sidecar ``<model stem>.cococxr.json``
  (``runs/x/model.h5`` -> ``runs/x/model.cococxr.json``), written by ``cococxr train
  classifier`` and read by :func:`read_sidecar`: classes, input settings, lung masking and
  the tuned decision threshold, applied by :func:`decide`. Without a threshold the decision
  is the most probable class; with a threshold ``t`` for the positive class ``P``: ``P``
  when ``p(P) >= t``, otherwise the most probable of the other classes.

No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cococxr.errors import ConfigError
from cococxr.pipelines.engine.runs import read_json, write_json

CONFIG_FILE = "config.json"
SIDECAR_SUFFIX = ".cococxr.json"
SIDECAR_FORMAT = "cococxr-classifier/1"


# ---------------------------------------------------------------- segmentation models: the run's config.json
@dataclass
class InputSpec:
    """What a model expects as input, and the names of its output channels."""

    classes: list[str]
    input_size: tuple[int, int]
    channels: int
    preprocessing: str | None = None
    equalize: str | None = None


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


# ---------------------------------------------------------------- classifiers: the sidecar
@dataclass
class ClassifierSidecar:
    """What a trained classifier needs beside its weights.

    Attributes:
        class_names: output classes, in the order of the model's outputs.
        class_spec: the class spec it was trained with (``cococxr.pipelines.classification.labels``);
            evaluation resolves it against the evaluated file.
        groups: the label categories each class merged in the training file.
        input_size: square input size in pixels.
        channels: input channels (1 or 3).
        equalize: histogram equalisation of the decoded image (None, ``"hist"``, ``"clahe"``).
        mask_with: ``"none"``, ``"coco"`` (lung masks of the COCO file) or the path of a
            segmentation model (absolute, resolved at training time).
        mask_classes: mask categories (``coco``) or segmentation classes united into the mask.
        positive_class: the class whose probability the threshold applies to.
        threshold: the tuned threshold, or None (most probable class).
        tuning: how the threshold was chosen: ``mode``, ``target_sensitivity`` and the
            validation ``stats`` at that threshold (tp, fp, sensitivity, ...).
    """

    class_names: list[str]
    class_spec: str
    groups: dict[str, list[str]]
    input_size: int
    channels: int = 1
    equalize: str | None = "hist"
    mask_with: str = "none"
    mask_classes: list[str] = field(default_factory=lambda: ["lung"])
    positive_class: str | None = None
    threshold: float | None = None
    tuning: dict | None = None

    def positive_index(self) -> int | None:
        """Index of ``positive_class`` in ``class_names`` (None when unset)."""
        return None if self.positive_class is None else self.class_names.index(self.positive_class)


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``runs/x/model.h5`` -> ``runs/x/model.cococxr.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def write_sidecar(model_path: str | os.PathLike, sidecar: ClassifierSidecar) -> Path:
    """Write the sidecar of ``model_path`` atomically and return its path."""
    check_sidecar(sidecar)
    return write_json(sidecar_path(model_path), {"format": SIDECAR_FORMAT, **dataclasses.asdict(sidecar)})


def read_sidecar(model_path: str | os.PathLike) -> ClassifierSidecar:
    """Read the sidecar beside ``model_path``.

    Raises:
        ConfigError: no sidecar, not one of ours, or inconsistent content.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: the classifier {model_path} needs the sidecar that "
                          f"'cococxr train classifier' writes beside it (class names, input settings, "
                          f"threshold)")
    try:
        data = read_json(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.pop("format", None) != SIDECAR_FORMAT:
        raise ConfigError(f"{path}: not a cococxr classifier sidecar (expected format {SIDECAR_FORMAT!r})")
    names = {f.name for f in dataclasses.fields(ClassifierSidecar)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}")
    try:
        sidecar = ClassifierSidecar(**data)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    check_sidecar(sidecar, str(path))
    return sidecar


def check_sidecar(sidecar: ClassifierSidecar, where: str = "sidecar") -> None:
    """Raise ConfigError when the positive class or threshold is inconsistent."""
    if len(sidecar.class_names) < 2:
        raise ConfigError(f"{where}: a classifier has at least two classes, got {sidecar.class_names}")
    if sidecar.positive_class is not None and sidecar.positive_class not in sidecar.class_names:
        raise ConfigError(f"{where}: positive_class {sidecar.positive_class!r} is not one of "
                          f"{sidecar.class_names}")
    if sidecar.threshold is not None:
        if sidecar.positive_class is None:
            raise ConfigError(f"{where}: a threshold needs a positive_class")
        if not 0.0 <= float(sidecar.threshold) <= 1.0:
            raise ConfigError(f"{where}: threshold must be within 0..1, got {sidecar.threshold}")


def decide(probs, positive: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Predicted class indices from ``(N, K)`` probabilities (see the module docstring)."""
    probs = np.asarray(probs, dtype=float)
    if threshold is None:
        return probs.argmax(axis=1)
    others = probs.copy()
    others[:, positive] = -np.inf
    return np.where(probs[:, positive] >= threshold, positive, others.argmax(axis=1))


__all__ = [
    "CONFIG_FILE",
    "InputSpec",
    "input_spec",
    "SIDECAR_SUFFIX",
    "SIDECAR_FORMAT",
    "ClassifierSidecar",
    "sidecar_path",
    "write_sidecar",
    "read_sidecar",
    "check_sidecar",
    "decide",
]
