"""The model cards: what a trained model needs beside its weights to be fed and read as in training.

Every model the project saves (segmentation, classifier, Mask R-CNN) has one card, named
after the model file so that several models share a folder: ``runs/x/model.h5`` ->
``runs/x/model.cococxr.json``, format ``cococxr-model/1``::

    {"format": "cococxr-model/1", "task": "segmentation" | "classifier" | "maskrcnn",
     "classes": [...], "input": {"input_size", "channels", "equalize", "preprocessing"},
     "details": {...task-specific...}}

``input`` is the :class:`~cococxr.model_input.ModelInput` the model was trained with, so
evaluation, prediction, the classifier's lung masking, Grad-CAM and the app feed it what
training fed it. Cards written by earlier versions still load: a segmentation run's
``config.json`` beside the model, and a classifier's ``cococxr-classifier/1`` sidecar.

* :func:`input_spec` resolves a segmentation model's :class:`InputSpec` (card, then the
  model's input shape, explicit arguments winning).
* A classifier's card details are its :class:`ClassifierSidecar` (:func:`read_sidecar`,
  :func:`write_sidecar`): classes, input settings, lung masking and the tuned decision
  threshold, applied by :func:`decide`. Without a threshold the decision is the most
  probable class; with a threshold ``t`` for the positive class ``P``: ``P`` when
  ``p(P) >= t``, otherwise the most probable of the other classes.

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
from cococxr.model_input import ModelInput
from cococxr.pipelines.engine.runs import read_json, write_json

CONFIG_FILE = "config.json"
CARD_SUFFIX = ".cococxr.json"
CARD_FORMAT = "cococxr-model/1"
TASKS = ("segmentation", "classifier", "maskrcnn")
#: the classifier sidecar of earlier versions (same file name, flat fields)
LEGACY_CLASSIFIER_FORMAT = "cococxr-classifier/1"
SIDECAR_SUFFIX = CARD_SUFFIX
_INPUT_KEYS = ("input_size", "channels", "equalize", "preprocessing")


# ---------------------------------------------------------------- the card file
def card_path(model_path: str | os.PathLike) -> Path:
    """``runs/x/model.h5`` -> ``runs/x/model.cococxr.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + CARD_SUFFIX)


def write_card(model_path: str | os.PathLike, task: str, classes, model_input: ModelInput | dict | None,
               **details) -> Path:
    """Write the card of ``model_path`` atomically and return its path.

    Args:
        model_path: the model file the card describes.
        task: one of :data:`TASKS`.
        classes: output class names, in the order of the model's outputs.
        model_input: its input spec (None for a model that resizes by itself, Mask R-CNN).
        **details: task-specific, JSON-able facts (architecture, threshold...).
    """
    if task not in TASKS:
        raise ConfigError(f"model card task must be one of {list(TASKS)}, got {task!r}")
    spec = model_input.describe() if isinstance(model_input, ModelInput) else model_input
    return write_json(card_path(model_path), {"format": CARD_FORMAT, "task": task, "classes": list(classes),
                                              "input": spec, "details": details})


def _legacy_run_config(model_path: Path) -> dict | None:
    """A card from the run's ``config.json`` beside a segmentation model (earlier versions)."""
    config = model_path.parent / CONFIG_FILE
    if not config.is_file():
        return None
    try:
        run = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{config}: not valid JSON ({exc})") from exc
    if not isinstance(run, dict):
        raise ConfigError(f"{config}: expected a JSON object")
    return {"format": CARD_FORMAT, "task": "segmentation", "classes": run.get("classes"),
            "input": {key: run.get(key) for key in _INPUT_KEYS}, "details": {}, "source": str(config)}


def _from_legacy_classifier(data: dict) -> dict:
    """A card from an earlier version's flat ``cococxr-classifier/1`` sidecar."""
    details = {k: v for k, v in data.items() if k not in ("format", "class_names", "input_size", "channels",
                                                           "equalize")}
    return {"format": CARD_FORMAT, "task": "classifier", "classes": data.get("class_names"),
            "input": {"input_size": data.get("input_size"), "channels": data.get("channels", 1),
                      "equalize": data.get("equalize", "hist"), "preprocessing": None},
            "details": details}


def read_card(model_path: str | os.PathLike) -> dict | None:
    """The card of ``model_path`` (current or earlier format), with ``"source"``; None when absent.

    Raises:
        ConfigError: a card file that is not valid JSON or not one of ours.
    """
    path = card_path(model_path)
    if not path.is_file():
        return _legacy_run_config(Path(model_path))
    try:
        data = read_json(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == LEGACY_CLASSIFIER_FORMAT:
        data = _from_legacy_classifier(data)
    elif fmt != CARD_FORMAT:
        raise ConfigError(f"{path}: not a cococxr model card (expected format {CARD_FORMAT!r})")
    unknown = sorted(set(data) - {"format", "task", "classes", "input", "details"})
    if unknown or data.get("task") not in TASKS:
        raise ConfigError(f"{path}: unknown key(s) {unknown}" if unknown else
                          f"{path}: task must be one of {list(TASKS)}, got {data.get('task')!r}")
    return {**data, "source": str(path)}


# ---------------------------------------------------------------- input settings
@dataclass
class InputSpec:
    """What a model expects as input, and the names of its output channels."""

    classes: list[str]
    input_size: tuple[int, int]
    channels: int
    preprocessing: str | None = None
    equalize: str | None = None

    def model_input(self) -> ModelInput:
        """The :class:`~cococxr.model_input.ModelInput` that feeds this model."""
        return ModelInput(self.input_size, self.channels, self.equalize, self.preprocessing)


def input_spec(model, model_path: str | os.PathLike | None = None, *, classes=None,
               input_size=None, channels=None, preprocessing=None, equalize=None) -> InputSpec:
    """Resolve a model's input settings.

    Order: explicit arguments (not None), then the model's card (or, for runs of
    earlier versions, the ``config.json`` beside ``model_path``), then the model's input
    shape. ``preprocessing`` / ``equalize`` given as ``"none"`` mean None.

    Raises:
        ConfigError: classes unknown (no card and none given), or a count that differs
            from the model's output channels.
    """
    card = (read_card(model_path) if model_path else None) or {}
    recorded = {**(card.get("input") or {}), "classes": card.get("classes")}
    shape = model.input_shape
    height, width, model_channels = shape[1], shape[2], shape[3]
    size = input_size or recorded.get("input_size") or (height if height == width else None)
    if size is None:
        raise ConfigError("the model has no fixed square input size: give input_size")
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    names = classes or recorded.get("classes")
    n_out = int(model.output_shape[-1])
    if not names:
        raise ConfigError(f"which classes does the model predict? Give the {n_out} class name(s) "
                          f"(--classes); no model card ({CARD_SUFFIX}) or {CONFIG_FILE} beside the "
                          f"model records them")
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != n_out:
        raise ConfigError(f"{len(names)} class name(s) {names} for a model with {n_out} output channel(s)")

    def pick(value, key):
        value = recorded.get(key) if value is None else value
        return None if isinstance(value, str) and value.lower() == "none" else value

    return InputSpec(classes=names, input_size=size,
                     channels=int(channels or recorded.get("channels") or model_channels),
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
    """The classifier's card: ``runs/x/model.h5`` -> ``runs/x/model.cococxr.json``."""
    return card_path(model_path)


_CARD_INPUT = {"input_size", "channels", "equalize"}


def write_sidecar(model_path: str | os.PathLike, sidecar: ClassifierSidecar) -> Path:
    """Write the classifier's model card atomically and return its path."""
    check_sidecar(sidecar)
    fields = dataclasses.asdict(sidecar)
    details = {k: v for k, v in fields.items() if k not in _CARD_INPUT | {"class_names"}}
    spec = ModelInput(sidecar.input_size, sidecar.channels, sidecar.equalize)
    return write_card(model_path, "classifier", sidecar.class_names, spec, **details)


def read_sidecar(model_path: str | os.PathLike) -> ClassifierSidecar:
    """The :class:`ClassifierSidecar` of a classifier's card (current or earlier format).

    Raises:
        ConfigError: no card, not a classifier's, or inconsistent content.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: the classifier {model_path} needs the model card that "
                          f"'cococxr train classifier' writes beside it (class names, input settings, "
                          f"threshold)")
    card = read_card(model_path)
    if card["task"] != "classifier":
        raise ConfigError(f"{path}: the card of a {card['task']} model, not of a classifier")
    spec = card.get("input") or {}
    size = spec.get("input_size")
    data = {"class_names": card["classes"], **(card.get("details") or {}),
            "input_size": size[0] if isinstance(size, list) else size,
            **{k: spec[k] for k in ("channels", "equalize") if k in spec}}
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
    "CARD_SUFFIX",
    "CARD_FORMAT",
    "TASKS",
    "card_path",
    "write_card",
    "read_card",
    "InputSpec",
    "input_spec",
    "SIDECAR_SUFFIX",
    "ClassifierSidecar",
    "sidecar_path",
    "write_sidecar",
    "read_sidecar",
    "check_sidecar",
    "decide",
]
