"""Keras callbacks of the training pipelines (imports TensorFlow; load it lazily).

* :class:`WallClockBudget` stops training once a wall-clock budget is spent, so that
  several models can be compared on equal time.
* :class:`EpochTimer` adds ``epoch_seconds`` (training part of the epoch) to the epoch
  logs, so it lands in ``history.csv``.
* :class:`BestModelSaver` saves the model through :func:`cococxr.models.io.save_model`
  whenever the monitored validation value improves.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from cococxr._tf import keras

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
        from cococxr.models.io import save_model

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


__all__ = ["WallClockBudget", "EpochTimer", "BestModelSaver"]
