"""Classification metrics: report (accuracy, F1, kappa, per-class, ROC AUC with bootstrap
interval, confusion matrix) and decision-threshold helpers."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from cococxr.errors import ConfigError


def _probabilities(y_prob, n_classes: int) -> np.ndarray:
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim == 1 and n_classes == 2:
        y_prob = np.stack([1 - y_prob, y_prob], axis=1)
    if y_prob.ndim != 2 or y_prob.shape[1] != n_classes:
        raise ConfigError(f"y_prob must have shape (N, {n_classes}) (or (N,) for two "
                          f"classes), got {y_prob.shape}")
    return y_prob


def _predict(prob: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return prob.argmax(axis=1)
    if prob.shape[1] != 2:
        raise ConfigError("threshold applies to two-class problems only")
    return (prob[:, 1] >= threshold).astype(int)


def _auc(y_true: np.ndarray, prob: np.ndarray) -> float | None:
    labels = np.arange(prob.shape[1])
    if np.unique(y_true).size < prob.shape[1]:
        return None
    if prob.shape[1] == 2:
        return float(skm.roc_auc_score(y_true, prob[:, 1]))
    return float(skm.roc_auc_score(y_true, prob, multi_class="ovr", average="macro", labels=labels))


def bootstrap_auc(y_true, prob, n_boot: int = 1000, seed: int = 0,
                  alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the ROC AUC (resampling cases with replacement).

    Resamples missing a class are skipped. Returns ``(low, high)``, or ``(None, None)``
    when no resample has every class.
    """
    y_true, prob = np.asarray(y_true), np.asarray(prob)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        value = _auc(y_true[idx], prob[idx])
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _one_vs_rest_auc(y_true: np.ndarray, prob: np.ndarray, k: int) -> float | None:
    positives = y_true == k
    if positives.all() or not positives.any():
        return None
    return float(skm.roc_auc_score(positives, prob[:, k]))


def classification_report_dict(y_true, y_prob, class_names: Sequence[str],
                               threshold: float | None = None, n_boot: int = 1000,
                               seed: int = 0) -> dict:
    """Classification metrics as a JSON-able dict.

    Args:
        y_true: ``(N,)`` integer labels, indices into ``class_names``.
        y_prob: ``(N, K)`` class probabilities, or ``(N,)`` positive-class probabilities
            for two classes.
        class_names: the K class names.
        threshold: two classes only: predict class 1 when its probability is
            ``>= threshold``; None predicts the most probable class.
        n_boot: bootstrap resamples for the AUC interval (0 to skip it).
        seed: bootstrap random seed.

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``cohen_kappa``, ``macro_f1``,
        ``weighted_f1``, ``per_class`` ({name: precision, recall, f1, support, auc}),
        ``roc_auc`` ({value, ci_low, ci_high}: binary AUC, or macro one-vs-rest AUC for
        several classes; None when a class is absent from ``y_true``),
        ``confusion_matrix`` (rows true, columns predicted, in ``class_names`` order),
        ``class_names`` and ``threshold``.
    """
    names = list(class_names)
    y_true = np.asarray(y_true).astype(int)
    prob = _probabilities(y_prob, len(names))
    if len(y_true) != len(prob):
        raise ConfigError(f"{len(y_true)} labels for {len(prob)} probability rows")
    y_pred = _predict(prob, threshold)
    labels = list(range(len(names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    auc = _auc(y_true, prob)
    low, high = (None, None)
    if auc is not None and n_boot:
        low, high = bootstrap_auc(y_true, prob, n_boot, seed)
    return {
        "class_names": names,
        "threshold": threshold,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "cohen_kappa": float(skm.cohen_kappa_score(y_true, y_pred, labels=labels)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro",
                                       zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="weighted",
                                          zero_division=0)),
        "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]),
                             "f1": float(f1[k]), "support": int(support[k]),
                             "auc": _one_vs_rest_auc(y_true, prob, k)}
                      for k, name in enumerate(names)},
        "roc_auc": {"value": auc, "ci_low": low, "ci_high": high},
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def threshold_table(y_true, scores) -> dict[str, np.ndarray]:
    """Confusion counts at every distinct score used as threshold (``score >= t``).

    Returns:
        Arrays ``threshold`` (descending), ``tp``, ``fp``, ``fn``, ``tn``.
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], y_true[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    return {"threshold": s[last_of_tie], "tp": tp, "fp": fp,
            "fn": y.sum() - tp, "tn": (~y).sum() - fp}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def tune_threshold(y_true, scores, mode: str = "f1", target: float = 0.95) -> tuple[float, dict]:
    """Choose a decision threshold (predict positive when ``score >= threshold``).

    Args:
        y_true: ``(N,)`` 0/1 labels.
        scores: ``(N,)`` positive-class scores.
        mode: ``"f1"``: the threshold with the highest F1 (the highest threshold among
            ties); ``"sensitivity"``: among thresholds whose sensitivity reaches
            ``target``, the one with the best specificity (the highest such threshold).
        target: the sensitivity to reach in ``"sensitivity"`` mode.

    Returns:
        ``(threshold, stats)`` with stats ``threshold``, ``tp``, ``fp``, ``fn``, ``tn``,
        ``sensitivity``, ``specificity``, ``precision``, ``f1``.
    """
    if mode not in ("f1", "sensitivity"):
        raise ConfigError(f"mode must be 'f1' or 'sensitivity', not {mode!r}")
    if not 0 < target <= 1:
        raise ConfigError(f"target sensitivity must be in (0, 1], got {target}")
    table = threshold_table(y_true, scores)
    if table["tp"].size == 0 or table["tp"][-1] == 0:
        raise ConfigError("tune_threshold needs at least one positive case")
    table["sensitivity"] = _ratio(table["tp"], table["tp"] + table["fn"])
    table["specificity"] = _ratio(table["tn"], table["tn"] + table["fp"])
    table["precision"] = _ratio(table["tp"], table["tp"] + table["fp"])
    table["f1"] = _ratio(2 * table["tp"], 2 * table["tp"] + table["fp"] + table["fn"])
    if mode == "f1":
        best = int(np.argmax(table["f1"]))  # first maximum = highest threshold
    else:
        best = int(np.argmax(table["sensitivity"] >= target))  # first reaching the target
    stats = {key: (float(v[best]) if v.dtype.kind == "f" else int(v[best]))
             for key, v in table.items()}
    return stats["threshold"], stats


__all__ = ["classification_report_dict", "bootstrap_auc", "threshold_table", "tune_threshold"]
