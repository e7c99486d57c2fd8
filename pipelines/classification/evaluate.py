"""``cococxr evaluate classifier``: metrics of a classifier on an unbalanced test set.

Every labelled image of the COCO file is classified once (no balancing, no
augmentation), fed as the classifier's sidecar describes (input size, equalisation, lung
masking). Two decision rules are scored:

* ``default``: the most probable class (argmax; 0.5 for two classes), over all classes;
* ``tuned``: the threshold tuned on validation (``<model stem>.cococxr.json``) for the
  positive class, scored as positive vs the rest of the classes.

Each gets accuracy, balanced accuracy, per-class precision/recall/F1, macro and weighted
F1, Cohen's kappa, ROC AUC with a percentile-bootstrap 95 % interval and the confusion
matrix (:func:`cococxr.metrics.classification_report_dict`). Files written to ``out``:
``metrics.json``, ``predictions.csv`` (per image: truth, probabilities, both decisions),
``classification_report.txt``, ``confusion_matrix.png``, ``confusion_matrix_tuned.png``
and ``report.html``.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report

from cococxr.atomic import atomic_open, atomic_write_text
from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.metrics import classification_report_dict
from cococxr.pipelines.classification.data import labelled_coco
from cococxr.pipelines.engine.cards import ClassifierSidecar, decide
from cococxr.pipelines.engine.classifier import (Predictions, classifier_sequence, load_classifier, mask_source,
                                                 predict)
from cococxr.pipelines.engine.runs import write_json
from cococxr.reports import HtmlReport, confusion_matrix_png

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
REPORT_TEXT_FILE = "classification_report.txt"
CONFUSION_FILE = "confusion_matrix.png"
CONFUSION_TUNED_FILE = "confusion_matrix_tuned.png"
REPORT_FILE = "report.html"


def rest_name(sidecar: ClassifierSidecar) -> str:
    """The negative class of the tuned (positive vs rest) report."""
    others = [c for c in sidecar.class_names if c != sidecar.positive_class]
    return others[0] if len(others) == 1 else f"not {sidecar.positive_class}"


def evaluation_metrics(preds: Predictions, sidecar: ClassifierSidecar, n_boot: int = 1000,
                       seed: int = 0) -> dict:
    """Metrics at the default and (when the sidecar has one) the tuned threshold.

    Returns:
        ``{"num_images", "class_counts", "positive_class", "threshold", "default": report,
        "tuned": report or None}``, each report from
        :func:`cococxr.metrics.classification_report_dict` (the tuned one has the classes
        ``[rest, positive]``).
    """
    if preds.y_true is None or not len(preds.y_true):
        raise ConfigError("nothing to evaluate: no labelled image of the classifier's classes")
    names = sidecar.class_names
    counts = np.bincount(preds.y_true, minlength=len(names))
    metrics = {"num_images": int(len(preds.y_true)),
               "class_counts": {name: int(n) for name, n in zip(names, counts)},
               "positive_class": sidecar.positive_class, "threshold": sidecar.threshold,
               "default": classification_report_dict(preds.y_true, preds.probs, names, n_boot=n_boot,
                                                     seed=seed),
               "tuned": None}
    if sidecar.threshold is not None:
        positive = sidecar.positive_index()
        metrics["tuned"] = classification_report_dict(
            (preds.y_true == positive).astype(int), preds.probs[:, positive],
            [rest_name(sidecar), sidecar.positive_class], threshold=float(sidecar.threshold),
            n_boot=n_boot, seed=seed)
    return metrics


def write_predictions_csv(path: str | Path, preds: Predictions, sidecar: ClassifierSidecar) -> None:
    """Per image: ids, truth (when known), each class's probability, both decisions."""
    names = sidecar.class_names
    default = decide(preds.probs)
    tuned = decide(preds.probs, sidecar.positive_index(), sidecar.threshold)
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "file_name", *(["true"] if preds.y_true is not None else []),
                         *[f"prob_{n}" for n in names], "predicted_default", "predicted"])
        for k, (image_id, file_name) in enumerate(zip(preds.image_ids, preds.file_names)):
            truth = [names[preds.y_true[k]]] if preds.y_true is not None else []
            writer.writerow([image_id, file_name, *truth, *[repr(float(p)) for p in preds.probs[k]],
                             names[default[k]], names[tuned[k]]])


def _report_text(preds: Predictions, sidecar: ClassifierSidecar, metrics: dict) -> str:
    def block(title, y_true, y_pred, names, report):
        auc = report["roc_auc"]
        auc_text = ("n/a (a class is absent)" if auc["value"] is None else
                    f"{auc['value']:.3f} (95 % CI {_fmt(auc['ci_low'])}-{_fmt(auc['ci_high'])})")
        return (f"{title}\n" + classification_report(y_true, y_pred, labels=list(range(len(names))),
                                                     target_names=names, digits=3, zero_division=0)
                + f"balanced accuracy {report['balanced_accuracy']:.3f}  Cohen's kappa "
                  f"{report['cohen_kappa']:.3f}  ROC AUC {auc_text}\n")

    text = block("Default decision (most probable class)", preds.y_true, decide(preds.probs),
                 sidecar.class_names, metrics["default"])
    if metrics["tuned"] is not None:
        positive = sidecar.positive_index()
        y_true = (preds.y_true == positive).astype(int)
        y_pred = (preds.probs[:, positive] >= sidecar.threshold).astype(int)
        text += "\n" + block(f"Tuned threshold: {sidecar.positive_class} when p >= {sidecar.threshold:.4f}",
                             y_true, y_pred, metrics["tuned"]["class_names"], metrics["tuned"])
    return text


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_evaluation(out: str | Path, preds: Predictions, sidecar: ClassifierSidecar, n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Score predictions and write predictions.csv, the text report and the confusion matrices.

    ``metrics.json`` and ``report.html`` are left to the caller (training adds its facts).

    Returns:
        The metrics of :func:`evaluation_metrics`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluation_metrics(preds, sidecar, n_boot, seed)
    write_predictions_csv(out / PREDICTIONS_FILE, preds, sidecar)
    atomic_write_text(out / REPORT_TEXT_FILE, _report_text(preds, sidecar, metrics))
    confusion_matrix_png(np.asarray(metrics["default"]["confusion_matrix"]), sidecar.class_names,
                         out / CONFUSION_FILE, title="Most probable class")
    if metrics["tuned"] is not None:
        confusion_matrix_png(np.asarray(metrics["tuned"]["confusion_matrix"]), metrics["tuned"]["class_names"],
                             out / CONFUSION_TUNED_FILE,
                             title=f"{sidecar.positive_class} when p >= {sidecar.threshold:.3f}")
    return metrics


def add_report_sections(report, out: Path, metrics: dict) -> None:
    """Add the metric tables and confusion matrices of an evaluation to an HtmlReport."""
    for key, caption in (("default", "most probable class"), ("tuned", "tuned threshold")):
        result = metrics.get(key)
        if result is None:
            continue
        report.heading(f"Metrics: {caption}")
        report.table({k: result[k] for k in ("accuracy", "balanced_accuracy", "cohen_kappa", "macro_f1",
                                             "weighted_f1")}
                     | {"roc_auc": result["roc_auc"]["value"], "auc_ci_low": result["roc_auc"]["ci_low"],
                        "auc_ci_high": result["roc_auc"]["ci_high"], "threshold": result["threshold"]})
        report.table([{"class": name, **values} for name, values in result["per_class"].items()])
        png = out / (CONFUSION_FILE if key == "default" else CONFUSION_TUNED_FILE)
        if png.is_file():
            report.image(png.read_bytes(), f"confusion matrix, {caption}")


def format_metrics(metrics: dict) -> str:
    """A short human-readable summary."""
    lines = [f"images: {metrics['num_images']}  " +
             ", ".join(f"{k}: {v}" for k, v in metrics["class_counts"].items())]
    for key, caption in (("default", "most probable class"), ("tuned", "tuned threshold")):
        m = metrics.get(key)
        if m is None:
            continue
        auc = m["roc_auc"]
        lines.append(f"{caption:20} accuracy {m['accuracy']:.3f}  balanced {m['balanced_accuracy']:.3f}  "
                     f"macro F1 {m['macro_f1']:.3f}  kappa {m['cohen_kappa']:.3f}  AUC {_fmt(auc['value'])} "
                     f"[{_fmt(auc['ci_low'])}, {_fmt(auc['ci_high'])}]"
                     + (f"  (threshold {m['threshold']:.4f})" if m["threshold"] is not None else ""))
        lines += [f"  {name:20} precision {v['precision']:.3f}  recall {v['recall']:.3f}  F1 {v['f1']:.3f}  "
                  f"n={v['support']}" for name, v in m["per_class"].items()]
    return "\n".join(lines)


def evaluate_classifier(model_path, coco, out=None, *, seg_model=None, threshold: float | None = None,
                        image_root=None, batch_size: int = 16, n_boot: int = 1000, seed: int = 0,
                        progress: bool = True) -> dict:
    """Evaluate a trained classifier on every labelled image of a COCO file.

    Args:
        model_path: the classifier file; its sidecar (``<stem>.cococxr.json``) must be beside it.
        coco: COCO JSON path, dict or :class:`~cococxr.coco.CocoDataset` with image-level labels.
        out: folder for the files listed in the module docstring (None: none written).
        seg_model: segmentation model replacing the one the sidecar names (U-Net-masked classifiers).
        threshold: replaces the sidecar's tuned threshold.
        image_root: folder of the images (default: as the COCO file says).
        batch_size: images per batch.
        n_boot: bootstrap resamples of the AUC interval.
        seed: bootstrap seed.
        progress: show a progress bar.

    Returns:
        The metrics (see :func:`evaluation_metrics`), plus ``model``.
    """
    model, sidecar = load_classifier(model_path, seg_model=seg_model, threshold=threshold)
    if not isinstance(coco, CocoDataset) or image_root is not None:
        coco = CocoDataset(coco.dataset if isinstance(coco, CocoDataset) else coco, image_root)
    sequence = classifier_sequence(labelled_coco(coco, sidecar), sidecar,
                                   masker=mask_source(sidecar.mask_with, sidecar.mask_classes),
                                   batch_size=batch_size)
    preds = predict(model, sequence, progress)
    if out is None:
        return {**evaluation_metrics(preds, sidecar, n_boot, seed), "model": str(model_path)}
    out = Path(out)
    metrics = {**write_evaluation(out, preds, sidecar, n_boot, seed), "model": str(model_path),
               "coco": str(coco.source), "mask_with": sidecar.mask_with}
    write_json(out / METRICS_FILE, metrics)
    report = HtmlReport(f"cococxr classifier evaluation: {Path(str(model_path)).name} on {coco.source}")
    report.paragraph(format_metrics(metrics))
    add_report_sections(report, out, metrics)
    report.write(out / REPORT_FILE)
    return metrics


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate classifier`` (after :mod:`cococxr.pipelines.classification.commands` parsed it)."""
    metrics = evaluate_classifier(args.model, args.coco, args.out, seg_model=args.seg_model,
                                  threshold=args.threshold, image_root=args.image_root,
                                  batch_size=args.batch_size, n_boot=args.n_boot)
    print(format_metrics(metrics))
    print(f"-> {Path(args.out) / METRICS_FILE}")
    return 0


__all__ = ["evaluation_metrics", "write_evaluation", "write_predictions_csv", "add_report_sections",
           "format_metrics", "evaluate_classifier", "rest_name", "run"]
