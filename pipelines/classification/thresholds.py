"""The classifier's sidecar file: classes, input settings and the tuned decision threshold.

``cococxr train classifier`` writes ``<model stem>.cococxr.json`` beside the model file
(``runs/x/model.h5`` -> ``runs/x/model.cococxr.json``); ``evaluate classifier``,
``predict classifier``, ``explain`` and the app read it with :func:`read_sidecar`, so
they feed the model what training fed it and decide as training tuned it.

Decision rule (:func:`decide`): without a threshold, the most probable class. With a
threshold ``t`` for the positive class ``P``: ``P`` when ``p(P) >= t``, otherwise the
most probable of the other classes. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cococxr.errors import ConfigError

SIDECAR_SUFFIX = ".cococxr.json"
SIDECAR_FORMAT = "cococxr-classifier/1"
TUNE_MODES = ("f1", "sensitivity")


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
    from cococxr.pipelines.engine.runs import write_json

    check_sidecar(sidecar)
    return write_json(sidecar_path(model_path), {"format": SIDECAR_FORMAT, **dataclasses.asdict(sidecar)})


def read_sidecar(model_path: str | os.PathLike) -> ClassifierSidecar:
    """Read the sidecar beside ``model_path``.

    Raises:
        ConfigError: no sidecar, not one of ours, or inconsistent content.
    """
    from cococxr.pipelines.engine.runs import read_json

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


def tune_threshold(y_true, probs, positive: int, mode: str = "f1", target: float = 0.9) -> tuple[float, dict]:
    """Tune the positive class's threshold on validation predictions.

    Args:
        y_true: ``(N,)`` class indices.
        probs: ``(N, K)`` probabilities.
        positive: index of the positive class.
        mode: ``"f1"`` (best F1 of the positive class) or ``"sensitivity"`` (the highest
            threshold whose sensitivity reaches ``target``: a missed positive costs more
            than a false alarm).
        target: the sensitivity to reach in ``"sensitivity"`` mode.

    Returns:
        ``(threshold, stats)`` from :func:`cococxr.metrics.tune_threshold`.
    """
    from cococxr.metrics import tune_threshold as tune

    if mode not in TUNE_MODES:
        raise ConfigError(f"tune mode must be one of {TUNE_MODES}, got {mode!r}")
    y_true = np.asarray(y_true)
    return tune(y_true == positive, np.asarray(probs)[:, positive], mode=mode, target=target)


__all__ = ["ClassifierSidecar", "SIDECAR_SUFFIX", "TUNE_MODES", "sidecar_path", "write_sidecar",
           "read_sidecar", "check_sidecar", "decide", "tune_threshold"]
