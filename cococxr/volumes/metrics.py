"""Per-volume evaluation: 3-D Dice and 3-D HD95 in millimetres from the recorded spacing.

The overlap and surface-distance code is :mod:`cococxr.metrics` (the one the UW-Madison
score uses), applied to whole volumes: a case's slices are stacked with
:func:`cococxr.volumes.stack.class_volume` and scored with the voxel size the converter
recorded (``spacing``: slice, row, column mm), so HD95 is in mm, not pixels.
Conventions for empty masks are those of :mod:`cococxr.metrics` (both empty: Dice 1,
distance 0; one empty: Dice 0, distance = the volume's diagonal in mm).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError, ConversionError
from cococxr.metrics import dice, hausdorff_95

from .stack import case_volumes, class_volume


def volume_dice(pred, true, threshold: float = 0.5) -> float:
    """Dice of two 3-D masks counted over every voxel (not a mean of slice Dice)."""
    return dice(pred, true, threshold)


def volume_hd95(pred, true, spacing, threshold: float = 0.5) -> float:
    """95th-percentile symmetric surface distance of two 3-D masks, in the units of ``spacing``.

    Args:
        spacing: voxel size per axis of the arrays, e.g. a record's ``spacing``
            (slice, row, column mm) for canonical slice stacks.
    """
    if np.ndim(pred) != 3:
        raise ConfigError(f"volume_hd95 expects 3-D masks, got shape {np.shape(pred)}")
    return hausdorff_95(pred, true, spacing, threshold)


def volume_scores(pred, true, spacing, class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Dice and HD95 (mm) of each class of ``(D, H, W, K)`` stacks: ``{name: {"dice", "hd95_mm"}}``."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape or pred.ndim != 4 or pred.shape[-1] != len(class_names):
        raise ConfigError(f"expected two (D, H, W, {len(class_names)}) stacks, got {pred.shape} and {true.shape}")
    return {name: {"dice": volume_dice(pred[..., k], true[..., k]),
                   "hd95_mm": volume_hd95(pred[..., k], true[..., k], spacing)}
            for k, name in enumerate(class_names)}


def _as_dataset(pred, truth: CocoDataset) -> CocoDataset:
    """Predictions as a dataset on the truth's images: a CocoDataset, a COCO dict, or a results list."""
    if isinstance(pred, CocoDataset):
        return pred
    if isinstance(pred, dict):
        return CocoDataset(pred, validate=False)
    anns = [{**ann, "id": n} for n, ann in enumerate(pred, start=1)]
    unknown = sorted({a.get("image_id") for a in anns} - set(truth.imgs), key=str)
    if unknown:
        raise ConversionError(f"predictions refer to image id(s) {unknown[:10]} that {truth.source} does not have")
    data = {"images": list(truth.imgs.values()), "categories": list(truth.cats.values()), "annotations": anns}
    return CocoDataset(data, validate=False)


def evaluate_volumes(truth: CocoDataset, pred, classes: Sequence[str] | None = None) -> dict:
    """Score predictions case by case in 3-D.

    Args:
        truth: ground-truth COCO from a volume converter.
        pred: predictions: a COCO dataset (or dict) whose images carry the same
            ``case_id`` / ``slice_index`` and layout keys, or a COCO results list
            (``image_id`` of ``truth``'s images, ``category_id``, ``segmentation``).
        classes: category names to score (default: every geometry category of ``truth``).

    Returns:
        ``{"per_case": {case: {class: {"dice", "hd95_mm"}}}, "per_class": {class:
        {"dice", "hd95_mm", "n_cases"}}, "mean": {"dice", "hd95_mm"}}``; means are over
        cases, then over classes.

    Raises:
        ConversionError: a case missing from the predictions, slices that differ, or an
            unknown class name.
    """
    pred = _as_dataset(pred, truth)
    names = list(classes) if classes is not None else [c["name"] for c in truth.cats.values()
                                                       if c.get("supercategory") != "finding"]
    if not names:
        raise ConversionError(f"{truth.source}: no category to score")
    true_ids = [truth.cat_id(n) for n in names]
    pred_names = {c["name"]: i for i, c in pred.cats.items()}
    missing = [n for n in names if n not in pred_names]
    if missing:
        raise ConversionError(f"predictions have no category {missing}; expected the truth's names {names}")
    pred_ids = [pred_names[n] for n in names]
    true_cases = case_volumes(truth)
    pred_cases = case_volumes(pred, list(true_cases)) if pred is not truth else true_cases
    per_case = {}
    for case_id, case in true_cases.items():
        other = pred_cases[case_id]
        if other.layout.display_shape != case.layout.display_shape or \
                not np.allclose(other.layout.affine, case.layout.affine):
            raise ConversionError(f"case {case_id!r}: the predictions' slices {other.layout.display_shape} differ "
                                  f"from the truth's {case.layout.display_shape}")
        per_case[case_id] = volume_scores(class_volume(pred, other, pred_ids), class_volume(truth, case, true_ids),
                                          case.layout.spacing, names)
    per_class = {name: {"dice": float(np.mean([c[name]["dice"] for c in per_case.values()])),
                        "hd95_mm": float(np.mean([c[name]["hd95_mm"] for c in per_case.values()])),
                        "n_cases": len(per_case)} for name in names}
    mean = {key: float(np.mean([c[key] for c in per_class.values()])) for key in ("dice", "hd95_mm")}
    return {"per_case": per_case, "per_class": per_class, "mean": mean}


__all__ = ["evaluate_volumes", "volume_dice", "volume_hd95", "volume_scores"]
