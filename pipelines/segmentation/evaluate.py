"""``cococxr evaluate segmentation``: Dice, IoU, HD95 and COCO mask AP at the original resolution.

The model predicts at its input size; probabilities are resized back to each image's
original size with linear interpolation and thresholded at 0.5 (see
:mod:`cococxr.pipelines.segmentation.model`). Against the ground-truth masks rasterised
from the COCO file at that size, each image and class gets Dice, IoU and the 95th
percentile Hausdorff distance (pixels); means are over images, then over classes. The
thresholded masks become COCO results (RLE, score = mean probability inside the mask)
scored by COCOeval (``segm`` AP, AP50, AP75). ``metric="uw-madison"`` adds the UW-Madison
GI Tract score over case/day volumes (image keys ``case``, ``day``, ``slice``).
"""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from cococxr.errors import ConfigError

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
    from cococxr.masks import annotations_to_channels

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
    from cococxr.metrics import uw_madison_score

    stacks = []
    for slices in volumes.values():
        slices.sort(key=lambda item: item[0])
        stacks.append((np.stack([p for _, p, _ in slices]), np.stack([t for _, _, t in slices])))
    return uw_madison_score(stacks)


def _gt_subset(coco, image_ids: list, cat_ids: list[int]) -> dict:
    wanted_images, wanted_cats = set(image_ids), set(cat_ids)
    return {"images": [coco.imgs[i] for i in image_ids],
            "categories": [coco.cats[c] for c in cat_ids],
            "annotations": [a for a in coco.anns.values()
                            if a["image_id"] in wanted_images and a.get("category_id") in wanted_cats
                            and "segmentation" in a]}


def score_predictions(coco, classes: list[str], predictions: Iterable[tuple], *,
                      threshold: float = 0.5, metric: str | None = None) -> Evaluation:
    """Score predicted masks against a COCO file's masks (the evaluation core).

    Args:
        coco: :class:`cococxr.coco.CocoDataset` with the ground truth.
        classes: category names, the channel order of the predictions.
        predictions: ``(image_id, array)`` pairs; the array is ``(H, W, K)`` (or
            ``(H, W)`` for one class) probabilities or 0/1 masks at the image's size.
        threshold: probability above which a pixel is foreground.
        metric: None, or ``"uw-madison"`` to add the competition score.

    Returns:
        An :class:`Evaluation`.
    """
    from cococxr import metrics as M

    if metric not in EVAL_METRICS:
        raise ConfigError(f"metric must be one of {EVAL_METRICS[1:]}, got {metric!r}")
    cat_ids = [coco.cat_id(name) for name in classes]
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
        results += M.masks_to_coco_results([image_id], [prob], cat_ids, threshold=threshold)
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
        "per_class": per_class,
        "coco_segm": {k: v for k, v in coco_stats.items() if k != "per_category"},
    }
    if metric == "uw-madison":
        metrics["uw_madison"] = _uw_madison(volumes)
    return Evaluation(metrics, rows, results)


def write_per_image_csv(rows: list[dict], path: str | Path) -> None:
    """Write the per-image scores as CSV, atomically."""
    from cococxr.atomic import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _predicted_union(results: list[dict], image_id, height: int, width: int) -> np.ndarray:
    from cococxr.rle import coco_rle_decode

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
    import cv2

    from cococxr.reports import overlay_masks

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
    from cococxr.io import read_image
    from cococxr.reports import image_grid, write_png_rgb

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


def evaluate_segmentation(model_or_path, coco, *, classes=None, image_root=None, out=None,
                          metric: str | None = None, threshold: float = 0.5, batch_size: int = 8,
                          overlays: int = 4, include_empty: bool = False, input_size=None,
                          channels=None, preprocessing=None, equalize=None,
                          progress: bool = True) -> dict:
    """Evaluate a segmentation model on a COCO file at the images' original resolution.

    Args:
        model_or_path: a tf-keras model or a ``.h5``/``.keras`` file (a run folder's
            ``config.json`` beside it supplies classes and preprocessing).
        coco: COCO JSON path, dict or :class:`cococxr.coco.CocoDataset` with ground truth.
        classes: class names in output-channel order (default: from the run config).
        image_root: folder of the images (default: as CocoDataset resolves it).
        out: folder for ``metrics.json``, ``per_image.csv`` and ``overlays/`` (None: no files).
        metric: None or ``"uw-madison"``.
        threshold: probability threshold.
        batch_size: images predicted at a time.
        overlays: number of best and of worst images drawn.
        include_empty: also evaluate images without any mask of ``classes``.
        input_size, channels, preprocessing, equalize: override the run config.
        progress: show a progress bar.

    Returns:
        The metrics (also written to ``out/metrics.json``), with ``ms_per_image`` (model
        time only) and ``params``.
    """
    from cococxr.coco import CocoDataset
    from cococxr.pipelines.engine.runs import write_json
    from cococxr.pipelines.segmentation.model import (InferenceTimer, input_spec,
                                                      load_segmentation_model, predict_probabilities)

    model, path = load_segmentation_model(model_or_path)
    spec = input_spec(model, path, classes=classes, input_size=input_size, channels=channels,
                      preprocessing=preprocessing, equalize=equalize)
    if not isinstance(coco, CocoDataset) or image_root is not None:
        coco = CocoDataset(coco.dataset if isinstance(coco, CocoDataset) else coco, image_root)
    image_ids = evaluation_image_ids(coco, spec.classes, include_empty)
    timer = InferenceTimer()
    predictions = predict_probabilities(model, coco, spec, image_ids, batch_size, timer, progress)
    evaluation = score_predictions(coco, spec.classes, predictions, threshold=threshold, metric=metric)
    metrics = {**evaluation.metrics, "ms_per_image": timer.ms_per_image, "params": int(model.count_params())}
    if out is not None:
        out = Path(out)
        write_per_image_csv(evaluation.per_image, out / PER_IMAGE_FILE)
        write_overlays(coco, evaluation, spec.classes, out / OVERLAY_DIR, overlays)
        write_json(out / METRICS_FILE, metrics)
    return metrics


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


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags overriding the input settings a run's config.json records."""
    parser.add_argument("--classes", nargs="+", help="class names in output-channel order "
                        "(default: from config.json beside the model)")
    parser.add_argument("--input-size", type=int, help="model input size (default: run config / model)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="input channels (default: run config)")
    parser.add_argument("--preprocessing", help="backbone preprocessing name or 'none' (default: run config)")
    parser.add_argument("--equalize", help="hist, clahe or none (default: run config)")
    parser.add_argument("--batch-size", type=int, default=8, help="images predicted at a time (default: 8)")
    parser.add_argument("--image-root", help="folder of the images (default: as the COCO file says)")


def split_names(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``; None stays None."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr evaluate segmentation``."""
    parser.add_argument("model", help="model file (.h5 or .keras), e.g. runs/<run>/model.h5")
    parser.add_argument("--coco", required=True, help="COCO JSON with the ground-truth masks")
    parser.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, overlays/")
    parser.add_argument("--metric", choices=("uw-madison",),
                        help="also compute this competition score (uw-madison: per case/day volume)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument("--overlays", type=int, default=4, help="best and worst images drawn (default: 4)")
    parser.add_argument("--include-empty", action="store_true",
                        help="also evaluate images without any mask of the classes")
    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate segmentation``."""
    metrics = evaluate_segmentation(
        args.model, args.coco, classes=split_names(args.classes), image_root=args.image_root,
        out=args.out, metric=args.metric, threshold=args.threshold, batch_size=args.batch_size,
        overlays=args.overlays, include_empty=args.include_empty, input_size=args.input_size,
        channels=args.channels, preprocessing=args.preprocessing, equalize=args.equalize)
    print(format_metrics(metrics))
    print(f"-> {Path(args.out) / METRICS_FILE}")
    return 0


__all__ = [
    "Evaluation",
    "score_predictions",
    "write_per_image_csv",
    "write_overlays",
    "evaluation_image_ids",
    "evaluate_segmentation",
    "format_metrics",
]
