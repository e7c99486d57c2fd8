"""Evaluation metrics on numpy arrays: overlap, surface distance, COCO AP, classification.

No TensorFlow here. Modules:

- :mod:`~cococxr.metrics.overlap`: Dice, IoU, Hausdorff / HD95, per-class segmentation
  report (binarisation and empty-mask conventions are in its docstring);
- :mod:`~cococxr.metrics.uw_madison`: the UW-Madison GI Tract score;
- :mod:`~cococxr.metrics.coco_eval`: masks -> COCO results, COCO AP/AR;
- :mod:`~cococxr.metrics.classification`: classification report, bootstrap AUC,
  decision thresholds.
"""
from cococxr.metrics.classification import bootstrap_auc, classification_report_dict, threshold_table, tune_threshold
from cococxr.metrics.coco_eval import COCO_STAT_NAMES, EVALUATORS, coco_evaluate, masks_to_coco_results, resolve_evaluator
from cococxr.metrics.overlap import (
    binarize,
    dice,
    extent_diagonal,
    hausdorff_95,
    hausdorff_distance,
    iou,
    mean_dice,
    mean_iou,
    overlap_per_image,
    segmentation_report,
)
from cococxr.metrics.uw_madison import uw_madison_score, uw_madison_volume_score

__all__ = [
    "COCO_STAT_NAMES",
    "binarize",
    "dice",
    "iou",
    "overlap_per_image",
    "mean_dice",
    "mean_iou",
    "extent_diagonal",
    "hausdorff_95",
    "hausdorff_distance",
    "segmentation_report",
    "uw_madison_volume_score",
    "uw_madison_score",
    "masks_to_coco_results",
    "coco_evaluate",
    "resolve_evaluator",
    "EVALUATORS",
    "classification_report_dict",
    "bootstrap_auc",
    "threshold_table",
    "tune_threshold",
]
