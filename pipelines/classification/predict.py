"""``cococxr predict classifier``: class probabilities and decisions for new images.

Inputs are image files, folders (``--recursive`` for subfolders) or one COCO JSON file.
Each image is fed as the classifier's sidecar describes (for a U-Net-masked classifier,
its lungs are predicted by the segmentation model recorded there or given with
``--seg-model``) and decided with the sidecar's tuned threshold
(:func:`cococxr.pipelines.engine.cards.decide`). Results go to a CSV or JSON file
(``--out``, by suffix) and a summary to the terminal.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from cococxr.atomic import atomic_open
from cococxr.errors import ConfigError
from cococxr.pipelines.classification.data import input_coco
from cococxr.pipelines.engine.classifier import (classifier_sequence, load_classifier, mask_source, predict,
                                                 prediction_rows)
from cococxr.pipelines.engine.runs import write_json

OUT_SUFFIXES = (".csv", ".json")


def _write(out: Path, rows: list[dict], sidecar, model_path) -> None:
    if out.suffix.lower() == ".json":
        write_json(out, {"model": str(model_path), "class_names": sidecar.class_names,
                         "positive_class": sidecar.positive_class, "threshold": sidecar.threshold,
                         "predictions": rows})
        return
    with atomic_open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def predict_classifier(model_path, inputs: list, out=None, *, seg_model=None, threshold: float | None = None,
                       image_root=None, recursive: bool = False, batch_size: int = 16,
                       progress: bool = True) -> list[dict]:
    """Classify images with a trained classifier.

    Args:
        model_path: the classifier file, its sidecar beside it.
        inputs: image files and folders, or one COCO JSON path.
        out: ``.csv`` or ``.json`` file to write (None: nothing written).
        seg_model: segmentation model replacing the sidecar's (U-Net-masked classifiers).
        threshold: replaces the sidecar's tuned threshold.
        image_root: image folder of a COCO input.
        recursive: search folders recursively.
        batch_size: images per batch.
        progress: show a progress bar.

    Returns:
        The rows of :func:`prediction_rows`, in input order.
    """
    if out is not None and Path(out).suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(f"--out {out}: give a .csv or .json file")
    model, sidecar = load_classifier(model_path, seg_model=seg_model, threshold=threshold)
    coco = input_coco(inputs if isinstance(inputs, (list, tuple)) else [inputs], image_root, recursive)
    sequence = classifier_sequence(coco, sidecar, masker=mask_source(sidecar.mask_with, sidecar.mask_classes),
                                   subset="predict", batch_size=batch_size)
    rows = prediction_rows(predict(model, sequence, progress), sidecar)
    if out is not None:
        _write(Path(out), rows, sidecar, model_path)
    return rows


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr predict classifier`` (after :mod:`cococxr.pipelines.classification.commands` parsed it)."""
    rows = predict_classifier(args.model, args.images, args.out, seg_model=args.seg_model,
                              threshold=args.threshold, image_root=args.image_root, recursive=args.recursive,
                              batch_size=args.batch_size)
    for row in rows[:20]:
        probs = "  ".join(f"{k[5:]} {v:.3f}" for k, v in row.items() if k.startswith("prob_"))
        print(f"{row['predicted']:>16}  {probs}  {row['file_name']}")
    if len(rows) > 20:
        print(f"... {len(rows) - 20} more")
    counts = {}
    for row in rows:
        counts[row["predicted"]] = counts.get(row["predicted"], 0) + 1
    print(f"{len(rows)} image(s): " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + (f" -> {args.out}" if args.out else ""))
    return 0


__all__ = ["OUT_SUFFIXES", "predict_classifier", "run"]
