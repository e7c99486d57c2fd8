"""``cococxr evaluate segmentation``: Dice, IoU, HD95 and COCO mask AP at the original resolution.

The model predicts at its input size; probabilities are resized back to each image's
original size with linear interpolation and thresholded at 0.5 (see
:mod:`cococxr.pipelines.engine.segmenter`), then scored by
:func:`cococxr.pipelines.engine.evaluation.score_predictions`: against the ground-truth
masks rasterised from the COCO file at that size, each image and class gets Dice, IoU
and the 95th percentile Hausdorff distance (pixels); means are over images, then over
classes. The thresholded masks become COCO results (RLE, score = mean probability inside
the mask) scored by COCOeval (``segm`` AP, AP50, AP75). ``metric="uw-madison"`` adds the
UW-Madison GI Tract score over case/day volumes (image keys ``case``, ``day``, ``slice``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cococxr.coco import CocoDataset
from cococxr.pipelines.engine.cards import input_spec
from cococxr.pipelines.engine.evaluation import (METRICS_FILE, OVERLAY_DIR, PER_IMAGE_FILE, evaluation_image_ids,
                                                 format_metrics, score_predictions, write_overlays,
                                                 write_per_image_csv)
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.segmenter import load_segmentation_model, predict_probabilities
from cococxr.pipelines.engine.timing import InferenceTimer
from cococxr.pipelines.segmentation.arguments import split_names


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


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate segmentation`` (after :mod:`cococxr.pipelines.segmentation.commands` parsed it)."""
    metrics = evaluate_segmentation(
        args.model, args.coco, classes=split_names(args.classes), image_root=args.image_root,
        out=args.out, metric=args.metric, threshold=args.threshold, batch_size=args.batch_size,
        overlays=args.overlays, include_empty=args.include_empty, input_size=args.input_size,
        channels=args.channels, preprocessing=args.preprocessing, equalize=args.equalize)
    print(format_metrics(metrics))
    print(f"-> {Path(args.out) / METRICS_FILE}")
    return 0


__all__ = ["evaluate_segmentation", "run"]
