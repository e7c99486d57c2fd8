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
Slices of the volume converters (records with ``case_id``, ``slice_index`` and the
volume layout) are also scored per volume in 3-D (Dice, HD95 in millimetres from the
recorded spacing, :func:`cococxr.volumes.evaluate_volumes`) when every slice is predicted
(``include_empty``).
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from cococxr.coco import CocoDataset
from cococxr.pipelines.engine.cards import input_spec
from cococxr.pipelines.engine.evaluation import (METRICS_FILE, OVERLAY_DIR, PER_IMAGE_FILE, evaluation_image_ids,
                                                 format_metrics, score_predictions, write_overlays,
                                                 write_per_image_csv)
from cococxr.pipelines.engine.robustness import (group_dice, lung_qc, postprocess_probabilities,
                                                 write_qc_overlay)
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.segmenter import load_segmentation_model, predict_probabilities
from cococxr.pipelines.engine.timing import InferenceTimer
from cococxr.pipelines.segmentation.arguments import split_names
from cococxr.volumes import evaluate_volumes

#: image-record keys of a slice written by the volume converters (``convert nifti`` ...)
VOLUME_KEYS = ("case_id", "slice_index", "affine", "volume_shape")

QC_DIR = "qc"


def evaluate_segmentation(model_or_path, coco, *, classes=None, image_root=None, out=None,
                          metric: str | None = None, threshold: float = 0.5, batch_size: int = 8,
                          overlays: int = 4, include_empty: bool = False, input_size=None,
                          channels=None, preprocessing=None, equalize=None,
                          progress: bool = True, flip_tta: bool = False, postprocess: bool = False) -> dict:
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
        flip_tta: average each prediction with that of the mirrored image.
        postprocess: keep the two largest components of each mask and fill its holes.

    Returns:
        The metrics (also written to ``out/metrics.json``), with ``ms_per_image`` (model
        time only), ``params``, ``per_group`` (Dice per view / source / finding, where
        the image records carry those keys) and ``qc`` (the images whose predicted lungs
        look implausible, see :func:`cococxr.pipelines.engine.robustness.lung_qc`; their
        overlays go to ``out/qc/``) and ``per_volume`` (see :func:`volume_metrics`).
    """
    model, path = load_segmentation_model(model_or_path)
    spec = input_spec(model, path, classes=classes, input_size=input_size, channels=channels,
                      preprocessing=preprocessing, equalize=equalize)
    if not isinstance(coco, CocoDataset) or image_root is not None:
        coco = CocoDataset(coco.dataset if isinstance(coco, CocoDataset) else coco, image_root)
    image_ids = evaluation_image_ids(coco, spec.classes, include_empty)
    timer = InferenceTimer()
    predictions = predict_probabilities(model, coco, spec, image_ids, batch_size, timer, progress, flip_tta)
    qc: dict = {}
    qc_overlay = None if out is None else functools.partial(_write_qc_overlay, coco, Path(out) / QC_DIR)
    evaluation = score_predictions(coco, spec.classes, _checked(predictions, threshold, postprocess, qc, qc_overlay),
                                   threshold=threshold, metric=metric)
    flagged = [{"image_id": i, "file_name": coco.imgs[i].get("file_name"), **q}
               for i, q in qc.items() if q["reasons"]]
    metrics = {**evaluation.metrics, "ms_per_image": timer.ms_per_image, "params": int(model.count_params()),
               "flip_tta": flip_tta, "postprocess": postprocess,
               "per_group": group_dice(evaluation.per_image, coco.imgs),
               "per_volume": volume_metrics(coco, spec.classes, evaluation.results, include_empty),
               "qc": [{**f, "reasons": "; ".join(f["reasons"])} for f in flagged]}
    if out is not None:
        out = Path(out)
        write_per_image_csv(evaluation.per_image, out / PER_IMAGE_FILE)
        write_overlays(coco, evaluation, spec.classes, out / OVERLAY_DIR, overlays)
        write_json(out / METRICS_FILE, metrics)
    return metrics


def volume_metrics(coco: CocoDataset, classes, results: list[dict], include_empty: bool) -> dict | None:
    """3-D scores per volume of a dataset of volume slices, or None for other datasets.

    Returns:
        None when the records are not volume slices; ``{"skipped": reason}`` when not
        every slice was predicted; else :func:`cococxr.volumes.evaluate_volumes`' result
        (``per_case``, ``per_class``, ``mean``: Dice and ``hd95_mm``).
    """
    if not coco.imgs or not all(all(k in r for k in VOLUME_KEYS) for r in coco.imgs.values()):
        return None
    if not include_empty:
        return {"skipped": "per-volume scores need every slice predicted: evaluate with --include-empty"}
    return evaluate_volumes(coco, results, classes)


def _checked(predictions, threshold: float, postprocess: bool, qc: dict, qc_overlay=None):
    """Pass predictions on (post-processed if asked), measuring each union of classes into ``qc``.

    A flagged image's overlay is written at once (``qc_overlay(image_id, mask, reasons)``),
    so no mask outlives its image: memory stays flat however many images are flagged.
    """
    for image_id, prob in predictions:
        if postprocess:
            prob = postprocess_probabilities(prob, threshold)
        mask = (prob > threshold).any(axis=2)
        qc[image_id] = lung_qc(mask)
        if qc_overlay is not None and qc[image_id]["reasons"]:
            qc_overlay(image_id, mask, qc[image_id]["reasons"])
        yield image_id, prob


def _write_qc_overlay(coco: CocoDataset, folder: Path, image_id, mask, reasons: list[str]) -> None:
    name = Path(str(coco.imgs[image_id].get("file_name"))).stem
    write_qc_overlay(coco.image_path(image_id), mask, f"QC: {reasons[0]}", folder / f"{name}.png")


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate segmentation`` (after :mod:`cococxr.pipelines.segmentation.commands` parsed it)."""
    metrics = evaluate_segmentation(
        args.model, args.coco, classes=split_names(args.classes), image_root=args.image_root,
        out=args.out, metric=args.metric, threshold=args.threshold, batch_size=args.batch_size,
        overlays=args.overlays, include_empty=args.include_empty, input_size=args.input_size,
        channels=args.channels, preprocessing=args.preprocessing, equalize=args.equalize,
        flip_tta=args.flip_tta, postprocess=args.postprocess)
    print(format_metrics(metrics))
    for key, values in metrics["per_group"].items():
        print(f"Dice by {key}: " + ", ".join(f"{v} {m['dice']:.4f} ({m['images']})" for v, m in values.items()))
    volumes = metrics["per_volume"]
    if volumes is not None:
        print(f"per volume: {volumes['skipped']}" if "skipped" in volumes else
              f"per volume ({len(volumes['per_case'])} volumes, 3-D): Dice {volumes['mean']['dice']:.4f}, "
              f"HD95 {volumes['mean']['hd95_mm']:.2f} mm")
    print(f"QC: {len(metrics['qc'])} image(s) with implausible lungs"
          + (f" (overlays in {Path(args.out) / QC_DIR})" if metrics["qc"] else ""))
    for row in metrics["qc"]:
        print(f"  {row['file_name']}: {row['reasons']}")
    print(f"-> {Path(args.out) / METRICS_FILE}")
    return 0


__all__ = ["evaluate_segmentation", "run"]
