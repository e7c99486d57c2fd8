"""Keras callbacks of the training pipelines, and the standard set of a run (:func:`build_callbacks`).

* :class:`WallClockBudget` stops training once a wall-clock budget is spent, so that
  several models can be compared on equal time.
* :class:`EpochTimer` adds ``epoch_seconds`` (training part of the epoch) to the epoch
  logs, so it lands in ``history.csv``.
* :class:`BestModelSaver` saves the model through :func:`cococxr.models.io.save_model`
  whenever the monitored validation value improves.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cococxr._tf import keras
from cococxr.models.io import save_model
from cococxr.pipelines.engine.runs import HISTORY_FILE, TENSORBOARD_DIR

log = logging.getLogger(__name__)


class WallClockBudget(keras.callbacks.Callback):
    """Stop training after ``seconds`` of wall-clock time since training began.

    The budget is checked after every batch; the epoch in progress ends early and its
    validation still runs, so the last epoch is evaluated and may be checkpointed.

    Attributes:
        stopped: True when the budget (not the epoch count) ended training.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = float(seconds)
        self.stopped = False
        self._start = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._start >= self.seconds:
            if not self.stopped:
                log.info("wall-clock budget of %.0f s spent: stopping after this epoch's validation",
                         self.seconds)
            self.stopped = True
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Record the training seconds of each epoch (validation excluded) as ``epoch_seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = (self._train_end or time.perf_counter()) - self._start
        self.seconds.append(seconds)
        if logs is not None:
            logs["epoch_seconds"] = seconds


class BestModelSaver(keras.callbacks.Callback):
    """Save the model whenever ``monitor`` improves (every epoch when it is not logged).

    Attributes:
        best: the best monitored value so far (None before the first save).
        best_epoch: its 1-based epoch.
    """

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.path = Path(path)
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._warned = False

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isnan(float(value)):
            if not self._warned:
                log.warning("%s is not logged: saving the model after every epoch", self.monitor)
                self._warned = True
            self.best_epoch = epoch + 1
            save_model(self.model, self.path)
            return
        if self._improved(float(value)):
            self.best, self.best_epoch = float(value), epoch + 1
            save_model(self.model, self.path)


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


__all__ = ["WallClockBudget", "EpochTimer", "BestModelSaver", "TrainingCallbacks", "build_callbacks"]
