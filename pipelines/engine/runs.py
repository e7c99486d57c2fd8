"""Run folders, the standard training callbacks and distribution strategies.

A run folder (``runs/<name>-<YYYYmmdd-HHMMSS>`` or the ``--out`` folder) holds what a
training run leaves behind: ``config.json`` (the resolved config), the best model,
``history.csv``, ``metrics.json``, plots and ``tensorboard/`` logs. JSON files are
written atomically. This module imports TensorFlow only inside its functions.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cococxr.atomic import atomic_write_json
from cococxr.errors import ConfigError

log = logging.getLogger(__name__)
STRATEGIES = ("none", "mirrored", "multiworker")
HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "tensorboard"


def create_run_dir(out: str | os.PathLike | None = None, name: str = "run",
                   runs_dir: str | os.PathLike = "runs") -> Path:
    """Create and return the run folder.

    Args:
        out: use this folder (created if missing; existing files are overwritten).
        name: run name, used when ``out`` is None.
        runs_dir: parent of timestamped run folders.

    Returns:
        ``out``, or a new ``runs_dir/<name>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... appended
        when two runs start within the same second).
    """
    if out is not None:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stem = Path(runs_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = stem, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = stem.with_name(f"{stem.name}-{n}")


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples to JSON types; NaN and inf become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (see :func:`to_jsonable`) as indented JSON, atomically."""
    atomic_write_json(path, to_jsonable(obj), indent=2)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_history_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a ``history.csv`` written by Keras' CSVLogger into ``{column: [values]}``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = rows[0].keys() if rows else []
    return {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows] for c in columns}


@dataclass
class TrainingCallbacks:
    """The callbacks of one run and handles on the ones whose state is read afterwards."""

    callbacks: list
    saver: Any
    timer: Any
    budget: Any | None


def build_callbacks(run_dir: str | os.PathLike, model_path: str | os.PathLike, *,
                    monitor: str = "val_loss", mode: str = "min",
                    plateau_monitor: str = "val_loss", reduce_lr_patience: int | None = 4,
                    reduce_lr_factor: float = 0.5, min_lr: float = 1e-6,
                    early_stopping_patience: int | None = 10, tensorboard: bool = True,
                    max_train_seconds: float | None = None) -> TrainingCallbacks:
    """Build the standard callbacks of a training run.

    In order: epoch timer, wall-clock budget (when ``max_train_seconds``), best-model
    saver (:func:`cococxr.models.io.save_model` when ``monitor`` improves), learning-rate
    reduction on plateau and early stopping (both on ``plateau_monitor``; None disables),
    CSV history (``history.csv``) and TensorBoard logs (``tensorboard/``; skipped with a
    warning when the ``tensorboard`` package is not installed).

    Args:
        run_dir: folder for ``history.csv`` and ``tensorboard/``.
        model_path: where the best model is saved (``.h5`` or ``.keras``).
        monitor: logged value that picks the best model (e.g. ``val_f1-score``).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        plateau_monitor: logged value for ReduceLROnPlateau and EarlyStopping.
        reduce_lr_patience: epochs without improvement before the learning rate is
            multiplied by ``reduce_lr_factor``.
        reduce_lr_factor: learning-rate factor.
        min_lr: lower bound of the learning rate.
        early_stopping_patience: epochs without improvement before training stops.
        tensorboard: write TensorBoard logs.
        max_train_seconds: wall-clock budget of the whole ``fit`` call.

    Returns:
        A :class:`TrainingCallbacks`.
    """
    from cococxr._tf import keras
    from cococxr.pipelines.engine.callbacks import BestModelSaver, EpochTimer, WallClockBudget

    run_dir = Path(run_dir)
    timer = EpochTimer()
    budget = WallClockBudget(max_train_seconds) if max_train_seconds else None
    saver = BestModelSaver(model_path, monitor=monitor, mode=mode)
    callbacks = [timer, *([budget] if budget else []), saver]
    if reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=plateau_monitor, factor=reduce_lr_factor, patience=reduce_lr_patience,
            min_lr=min_lr, verbose=1))
    if early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=plateau_monitor, patience=early_stopping_patience, verbose=1))
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE)))
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        log.warning("TensorBoard logs skipped: the tensorboard package is not installed "
                    "(pip install tensorboard)")
    elif tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=str(run_dir / TENSORBOARD_DIR), write_graph=False, profile_batch=0))
    return TrainingCallbacks(callbacks, saver, timer, budget)


def make_strategy(name: str = "none", devices: list[str] | None = None):
    """Return a ``tf.distribute`` strategy.

    Args:
        name: ``"none"`` (the default strategy: one device), ``"mirrored"``
            (``MirroredStrategy``: synchronous data parallelism over the local GPUs, or
            over the logical CPU devices when there is no GPU) or ``"multiworker"``
            (``MultiWorkerMirroredStrategy``: several machines or processes, described
            by the ``TF_CONFIG`` environment variable).
        devices: devices for ``"mirrored"`` (default: every GPU, else every logical CPU).

    Returns:
        The strategy. ``"multiworker"`` must be created before TensorFlow runs any
        operation in the process (TensorFlow's rule for collective ops).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    from cococxr._tf import tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if not os.environ.get("TF_CONFIG"):
        raise ConfigError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                          "(cluster addresses and this worker's task); see docs/segmentation.md")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True for the worker that writes the run folder (always True without multiworker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def worker_dir(run_dir: Path, chief: bool) -> Path:
    """The folder a worker writes into: the run folder for the chief, a temp folder otherwise.

    Every multi-worker process must save the model (saving reads variables with
    collective ops), but only the chief's copy is kept.
    """
    return run_dir if chief else Path(tempfile.mkdtemp(prefix="cococxr-worker-"))


__all__ = [
    "STRATEGIES",
    "create_run_dir",
    "to_jsonable",
    "write_json",
    "read_json",
    "read_history_csv",
    "TrainingCallbacks",
    "build_callbacks",
    "make_strategy",
    "is_chief",
    "worker_dir",
]
