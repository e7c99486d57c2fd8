"""Scoring segmentation masks against a COCO file, shared by the U-Net and the Mask R-CNN evaluations.

:func:`score_predictions` takes ``(image_id, probabilities or masks)`` pairs at each
image's original size and thresholds them at ``threshold``. Against the ground-truth
masks rasterised from the COCO file at that size, each image and class gets Dice, IoU and
the 95th percentile Hausdorff distance (pixels); means are over images, then over
classes. The thresholded masks become COCO results (RLE, score = mean probability inside
the mask; one per connected component when the ground truth has instances) scored by
COCOeval (``segm`` AP, AP50, AP75). ``metric="uw-madison"`` adds the
UW-Madison GI Tract score over case/day volumes (image keys ``case``, ``day``, ``slice``).
:func:`write_per_image_csv`, :func:`write_overlays` and :func:`format_metrics` write and
print the result.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from cococxr import metrics as M
from cococxr.atomic import atomic_open
from cococxr.errors import ConfigError
from cococxr.io import read_image
from cococxr.masks import annotations_to_channels
from cococxr.reports import image_grid, overlay_masks, write_png_rgb
from cococxr.rle import coco_rle_decode

METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
OVERLAY_DIR = "overlays"
EVAL_METRICS = (None, "uw-madison")


@dataclass
class Evaluation:
    """Result of :func:`score_predictions`.

    Attributes:
        metrics: the summary written to ``metrics.json``.
        per_image: one row per image (``image_id``, ``file_name``, ``dice_<class>``,
            ``iou_<class>``, ``hd95_<class>``, ``dice``).
        results: COCO result dicts of the thresholded predictions.
    """

    metrics: dict
    per_image: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)


def _truth(coco, image_id, cat_ids: list[int]) -> np.ndarray:
    record = coco.imgs[image_id]
    anns = coco.anns_for(image_id, cat_ids, geometry=True)
    return annotations_to_channels(anns, int(record["height"]), int(record["width"]), cat_ids)


def _volume_key(record: dict) -> tuple:
    missing = [k for k in ("case", "day", "slice") if record.get(k) is None]
    if missing:
        raise ConfigError(f"metric uw-madison: image {record['id']} ({record.get('file_name')}) has no "
                          f"{', '.join(missing)} key(s); the score groups slices by case and day")
    return record["case"], record["day"]


def _uw_madison(volumes: dict) -> dict:
    stacks = []
    for slices in volumes.values():
        slices.sort(key=lambda item: item[0])
        stacks.append((np.stack([p for _, p, _ in slices]), np.stack([t for _, _, t in slices])))
    return M.uw_madison_score(stacks)


def _gt_subset(coco, image_ids: list, cat_ids: list[int]) -> dict:
    wanted_images, wanted_cats = set(image_ids), set(cat_ids)
    return {"images": [coco.imgs[i] for i in image_ids],
            "categories": [coco.cats[c] for c in cat_ids],
            "annotations": [a for a in coco.anns.values()
                            if a["image_id"] in wanted_images and a.get("category_id") in wanted_cats
                            and "segmentation" in a]}


def has_instances(coco, cat_ids: list[int]) -> bool:
    """Whether some image has more than one geometry annotation of one of ``cat_ids``."""
    wanted, seen = set(cat_ids), set()
    for ann in coco.anns.values():
        key = (ann["image_id"], ann.get("category_id"))
        if key[1] in wanted and "segmentation" in ann:
            if key in seen:
                return True
            seen.add(key)
    return False


def score_predictions(coco, classes: list[str], predictions: Iterable[tuple], *,
                      threshold: float = 0.5, metric: str | None = None,
                      instances: bool | None = None) -> Evaluation:
    """Score predicted masks against a COCO file's masks (the evaluation core).

    Args:
        coco: :class:`cococxr.coco.CocoDataset` with the ground truth.
        classes: category names, the channel order of the predictions.
        predictions: ``(image_id, array)`` pairs; the array is ``(H, W, K)`` (or
            ``(H, W)`` for one class) probabilities or 0/1 masks at the image's size.
        threshold: probability above which a pixel is foreground.
        metric: None, or ``"uw-madison"`` to add the competition score.
        instances: COCO results per connected component of each class mask (True) or
            one per class mask (False). None (default) picks components when the ground
            truth has instances (an image with two annotations of one class, such as
            two lungs), since one union mask can match only one of them. The choice is
            recorded as ``metrics["segm_results"]``; Dice and IoU do not depend on it.

    Returns:
        An :class:`Evaluation`.
    """
    if metric not in EVAL_METRICS:
        raise ConfigError(f"metric must be one of {EVAL_METRICS[1:]}, got {metric!r}")
    cat_ids = [coco.cat_id(name) for name in classes]
    if instances is None:
        instances = has_instances(coco, cat_ids)
    rows, results, volumes = [], [], {}
    for image_id, prob in predictions:
        prob = np.asarray(prob)
        prob = prob[..., None] if prob.ndim == 2 else prob
        truth = _truth(coco, image_id, cat_ids)
        if prob.shape != truth.shape:
            raise ConfigError(f"image {image_id}: prediction shape {prob.shape} differs from the "
                              f"ground truth's {truth.shape}")
        pred = M.binarize(prob, threshold)
        row = {"image_id": image_id, "file_name": coco.imgs[image_id].get("file_name")}
        for k, name in enumerate(classes):
            row[f"dice_{name}"] = M.dice(pred[..., k], truth[..., k])
            row[f"iou_{name}"] = M.iou(pred[..., k], truth[..., k])
            row[f"hd95_{name}"] = M.hausdorff_95(pred[..., k], truth[..., k])
        row["dice"] = float(np.mean([row[f"dice_{name}"] for name in classes]))
        rows.append(row)
        results += M.masks_to_coco_results([image_id], [prob], cat_ids, threshold=threshold, instances=instances)
        if metric == "uw-madison":
            record = coco.imgs[image_id]
            volumes.setdefault(_volume_key(record), []).append((record["slice"], pred, truth > 0))
    if not rows:
        raise ConfigError(f"nothing to evaluate: no image of {coco.source} was predicted")
    coco_stats = M.coco_evaluate(_gt_subset(coco, [r["image_id"] for r in rows], cat_ids), results)
    per_class = {name: {"dice": float(np.mean([r[f"dice_{name}"] for r in rows])),
                        "iou": float(np.mean([r[f"iou_{name}"] for r in rows])),
                        "hausdorff_95": float(np.mean([r[f"hd95_{name}"] for r in rows])),
                        "segm_AP": coco_stats["per_category"].get(name)}
                 for name in classes}
    metrics = {
        "num_images": len(rows), "classes": list(classes), "threshold": threshold,
        "resolution": "original",
        **{key: float(np.mean([c[key] for c in per_class.values()]))
           for key in ("dice", "iou", "hausdorff_95")},
        "segm_AP": coco_stats["AP"], "segm_AP50": coco_stats["AP50"], "segm_AP75": coco_stats["AP75"],
        "segm_results": "components" if instances else "masks",
        "per_class": per_class,
        "coco_segm": {k: v for k, v in coco_stats.items() if k != "per_category"},
    }
    if metric == "uw-madison":
        metrics["uw_madison"] = _uw_madison(volumes)
    return Evaluation(metrics, rows, results)


def write_per_image_csv(rows: list[dict], path: str | Path) -> None:
    """Write the per-image scores as CSV, atomically."""
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _predicted_union(results: list[dict], image_id, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for result in results:
        if result["image_id"] == image_id:
            mask |= coco_rle_decode(result["segmentation"], height, width)
    return mask


def _overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, caption: str) -> np.ndarray:
    """Prediction filled red, truth outlined green, caption top left.

    What ``reports.comparison_overlay`` draws; called through ``overlay_masks`` directly
    because ``comparison_overlay`` wraps a 2-D prediction in a list that
    ``overlay_masks`` reads as an (H, W, K) stack (IndexError).
    """
    out = overlay_masks(image, pred, colors=[(214, 39, 40)], alpha=0.3)
    out = overlay_masks(out, truth, colors=[(44, 200, 44)], contour_only=True)
    cv2.putText(out, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def write_overlays(coco, evaluation: Evaluation, classes: list[str], out_dir: str | Path,
                   count: int = 4) -> list[Path]:
    """Draw the ``count`` best and worst images by Dice: truth outline green, prediction red.

    Writes ``best.png`` and ``worst.png`` (grids, best first / worst first) in ``out_dir``.

    Returns:
        The files written.
    """
    if count <= 0 or not evaluation.per_image:
        return []
    cat_ids = [coco.cat_id(name) for name in classes]
    ranked = sorted(evaluation.per_image, key=lambda r: r["dice"], reverse=True)
    written = []
    for name, rows in (("best", ranked[:count]), ("worst", ranked[::-1][:count])):
        tiles = []
        for row in rows:
            record = coco.imgs[row["image_id"]]
            height, width = int(record["height"]), int(record["width"])
            truth = _truth(coco, row["image_id"], cat_ids).max(axis=2)
            pred = _predicted_union(evaluation.results, row["image_id"], height, width)
            caption = f"{Path(str(record.get('file_name'))).stem[:24]} Dice {row['dice']:.3f}"
            tiles.append(_overlay(read_image(coco.image_path(row["image_id"])), truth, pred, caption))
        path = Path(out_dir) / f"{name}.png"
        write_png_rgb(path, image_grid(tiles, columns=len(tiles)))
        written.append(path)
    return written


def evaluation_image_ids(coco, classes: list[str], include_empty: bool = False) -> list:
    """Images to evaluate: those with a mask of ``classes`` (every image with ``include_empty``)."""
    if include_empty:
        return list(coco.imgs)
    return coco.img_ids(cat_names=list(classes))


def format_metrics(metrics: dict) -> str:
    """A short human-readable summary of evaluation metrics."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [f"images: {metrics['num_images']}  (threshold {metrics['threshold']}, original resolution)",
             f"{'class':16} {'Dice':>8} {'IoU':>8} {'HD95 px':>9} {'AP':>8}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:16} {fmt(m['dice']):>8} {fmt(m['iou']):>8} {m['hausdorff_95']:9.2f} "
                     f"{fmt(m['segm_AP']):>8}")
    lines.append(f"{'mean':16} {fmt(metrics['dice']):>8} {fmt(metrics['iou']):>8} "
                 f"{metrics['hausdorff_95']:9.2f} {fmt(metrics['segm_AP']):>8}")
    lines.append(f"COCO segm AP {fmt(metrics['segm_AP'])}  AP50 {fmt(metrics['segm_AP50'])}  "
                 f"AP75 {fmt(metrics['segm_AP75'])}")
    if "uw_madison" in metrics:
        uw = metrics["uw_madison"]
        lines.append(f"UW-Madison score {uw['score']:.4f} (Dice {uw['dice']:.4f}, "
                     f"normalised Hausdorff {uw['hausdorff']:.4f}, {uw['n_volumes']} volumes)")
    return "\n".join(lines)


__all__ = [
    "METRICS_FILE",
    "PER_IMAGE_FILE",
    "OVERLAY_DIR",
    "EVAL_METRICS",
    "Evaluation",
    "score_predictions",
    "write_per_image_csv",
    "write_overlays",
    "evaluation_image_ids",
    "format_metrics",
]
