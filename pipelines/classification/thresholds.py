"""Tuning a classifier's decision threshold on validation predictions (``--tune``).

The tuned threshold is stored in the classifier's sidecar
(:class:`~cococxr.pipelines.engine.cards.ClassifierSidecar`), whose decision rule
:func:`~cococxr.pipelines.engine.cards.decide` applies it. No TensorFlow here.
"""
from __future__ import annotations

import numpy as np

from cococxr import metrics as M
from cococxr.errors import ConfigError
from cococxr.pipelines.classification.config import TUNE_MODES


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
    if mode not in TUNE_MODES:
        raise ConfigError(f"tune mode must be one of {TUNE_MODES}, got {mode!r}")
    y_true = np.asarray(y_true)
    return M.tune_threshold(y_true == positive, np.asarray(probs)[:, positive], mode=mode, target=target)


__all__ = ["TUNE_MODES", "tune_threshold"]
