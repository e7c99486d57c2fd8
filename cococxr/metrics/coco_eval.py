"""COCO evaluation: predicted masks as COCO results, and COCO AP/AR by COCOeval.

The evaluator is faster-coco-eval's C++ ``COCOeval_faster`` when that package is
installed (``pip install faster-coco-eval``; the same AP as pycocotools, several times
faster on large files; its mask IoUs come from pycocotools, see
:mod:`cococxr.metrics.faster_eval`), else pycocotools' ``COCOeval``, which stays the
reference. Pick one with ``evaluator=`` or the ``COCOCXR_COCO_EVALUATOR`` environment variable.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import io
import os
from collections.abc import Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cococxr.errors import CocoFormatError, ConfigError
from cococxr.masks import mask_components
from cococxr.metrics.faster_eval import FasterCOCO, MaskIoUFasterEval
from cococxr.metrics.overlap import binarize
from cococxr.rle import coco_rle_encode
from cococxr.rle.segmentation import segmentation_rle

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
EVALUATORS = ("auto", "faster-coco-eval", "pycocotools")
EVALUATOR_ENV = "COCOCXR_COCO_EVALUATOR"


def resolve_evaluator(name: str | None = None) -> str:
    """``"faster-coco-eval"`` or ``"pycocotools"`` for a name of :data:`EVALUATORS`.

    Args:
        name: ``"auto"`` (faster-coco-eval when installed), one of the two, or None for
            ``$COCOCXR_COCO_EVALUATOR`` (default ``"auto"``).

    Raises:
        ConfigError: an unknown name, or faster-coco-eval asked for but not installed.
    """
    name = name or os.environ.get(EVALUATOR_ENV) or "auto"
    if name not in EVALUATORS:
        raise ConfigError(f"COCO evaluator {name!r}: choose one of {list(EVALUATORS)}")
    installed = FasterCOCO is not None
    if name == "faster-coco-eval" and not installed:
        raise ConfigError("COCO evaluator 'faster-coco-eval' is not installed: pip install faster-coco-eval, "
                          "or use 'pycocotools'")
    if name == "auto":
        return "faster-coco-eval" if installed else "pycocotools"
    return name


def _mask_score(prob: np.ndarray, mask: np.ndarray) -> float:
    if np.issubdtype(prob.dtype, np.floating):
        return float(prob[mask].mean())
    return 1.0


def _component_results(image_id: int, category_id: int, prob: np.ndarray, mask: np.ndarray,
                       score: float | None) -> list[dict]:
    labels, rles = mask_components(mask)
    if score is not None:
        scores = [score] * len(rles)
    elif np.issubdtype(prob.dtype, np.floating):  # the mean probability inside each component
        inside = labels[mask]
        sums = np.bincount(inside, weights=prob[mask], minlength=len(rles) + 1)[1:]
        scores = (sums / np.bincount(inside, minlength=len(rles) + 1)[1:]).tolist()
    else:
        scores = [1.0] * len(rles)
    return [{"image_id": image_id, "category_id": category_id, "segmentation": rle, "score": float(s)}
            for rle, s in zip(rles, scores)]


def masks_to_coco_results(image_ids: Sequence[int], masks, category_ids: Sequence[int],
                          scores=None, threshold: float = 0.5, instances: bool = False) -> list[dict]:
    """Turn per-image, per-class predicted masks into COCO result dicts.

    Args:
        image_ids: one COCO image id per prediction.
        masks: per image an ``(H, W, K)`` (or ``(H, W)`` for one class) array of
            probabilities or 0/1 values; images may differ in size.
        category_ids: K category ids, the category of each mask channel.
        scores: optional ``(N, K)`` confidences; by default the mean probability inside
            the predicted mask (1.0 for binary masks).
        threshold: binarisation threshold for float arrays.
        instances: one result per 8-connected component of each mask (scored by the
            mean probability inside it), for ground truth with one annotation per object
            (two lungs, each its own annotation); by default one result per mask.

    Returns:
        One ``{"image_id", "category_id", "segmentation": {"size", "counts": str},
        "score"}`` per non-empty mask, or per component (empty predictions are left out).
    """
    if len(image_ids) != len(masks):
        raise ConfigError(f"{len(image_ids)} image ids for {len(masks)} masks")
    results = []
    for n, (image_id, probs) in enumerate(zip(image_ids, masks)):
        probs = np.asarray(probs)
        probs = probs[..., None] if probs.ndim == 2 else probs
        if probs.shape[-1] != len(category_ids):
            raise ConfigError(f"image {image_id}: {probs.shape[-1]} mask channels for "
                              f"{len(category_ids)} category ids")
        for k, category_id in enumerate(category_ids):
            mask = binarize(probs[..., k], threshold)
            if not mask.any():
                continue
            given = float(scores[n][k]) if scores is not None else None
            if instances:
                results += _component_results(int(image_id), int(category_id), probs[..., k], mask, given)
                continue
            score = given if given is not None else _mask_score(probs[..., k], mask)
            results.append({"image_id": int(image_id), "category_id": int(category_id),
                            "segmentation": coco_rle_encode(mask), "score": score})
    return results


def _geometry_dataset(gt) -> dict:
    if hasattr(gt, "pycocotools_dataset"):  # a CocoDataset: its dict, without building an index
        gt = gt.pycocotools_dataset()
    dataset = gt.dataset if hasattr(gt, "dataset") else gt
    if not isinstance(dataset, Mapping) or "images" not in dataset:
        raise CocoFormatError("coco_evaluate: gt must be a pycocotools COCO, a CocoDataset "
                              "or a COCO dict with 'images'")
    dataset = copy.copy(dict(dataset))
    dataset["annotations"] = [a for a in dataset.get("annotations", []) if "segmentation" in a]
    return dataset


def _complete_annotations(dataset: dict) -> None:
    images = {img["id"]: img for img in dataset["images"]}
    completed = []
    for ann in dataset["annotations"]:
        ann = dict(ann)
        if "area" not in ann or "bbox" not in ann:
            img = images[ann["image_id"]]
            rle = segmentation_rle(ann["segmentation"], img["height"], img["width"])
            ann.setdefault("area", float(mask_utils.area(rle)))
            ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        ann.setdefault("iscrowd", 0)
        completed.append(ann)
    dataset["annotations"] = completed


def _quiet_coco(dataset: dict, evaluator: str = "pycocotools"):
    if evaluator == "faster-coco-eval":
        return FasterCOCO(dataset)
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mask_results(coco_gt, results: Sequence[dict], evaluator: str, iou_type: str):
    """What ``loadRes`` builds from mask results, with one C call for all areas (and boxes).

    ``loadRes`` calls ``area`` and ``toBbox`` once per result, which costs more than the
    C++ evaluation itself on large files (1.8 s of 8.9 s at 33k annotations). Boxes are
    computed only for ``iou_type="bbox"``: mask IoU never reads them.
    """
    rles = [result["segmentation"] for result in results]
    # pycocotools' area() overflows on lists of more than 255 masks (np.array((n,), uint8))
    areas = np.concatenate([mask_utils.area(rles[i:i + 255]) for i in range(0, len(rles), 255)])
    boxes = mask_utils.toBbox(rles) if iou_type == "bbox" else None
    annotations = []
    for index, result in enumerate(results):
        ann = dict(result)
        ann["area"] = areas[index]
        if boxes is not None:
            ann.setdefault("bbox", boxes[index])
        ann["id"], ann["iscrowd"] = index + 1, 0
        annotations.append(ann)
    return _quiet_coco({"info": copy.deepcopy(coco_gt.dataset.get("info", {})),
                        "images": list(coco_gt.dataset["images"]),
                        "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
                        "annotations": annotations}, evaluator)


def _detections(coco_gt, results: Sequence[dict], evaluator: str, iou_type: str):
    first = results[0] if results else {}
    if "segmentation" in first and not first.get("bbox") and isinstance(first["segmentation"], dict):
        return _mask_results(coco_gt, results, evaluator, iou_type)
    if results:
        # loadRes adds keys to each result; the segmentations themselves are only read
        return coco_gt.loadRes([dict(result) for result in results])
    # loadRes cannot take an empty list; an empty result set scores 0 like any miss.
    return _quiet_coco({"images": coco_gt.dataset["images"],
                        "categories": coco_gt.dataset.get("categories", []),
                        "annotations": []}, evaluator)


def _cocoeval(coco_gt, coco_dt, iou_type: str, evaluator: str):
    if evaluator == "faster-coco-eval":
        # one IoU thread: an image's IoUs take microseconds, and its thread pool (default 8)
        # cost more than they saved (0.71 s against 0.92 s with 2 on 8k annotations)
        return MaskIoUFasterEval(coco_gt, coco_dt, iou_type, print_function=lambda *a: None,
                                 rle_iou_max_workers=1)
    return COCOeval(coco_gt, coco_dt, iou_type)


def _category_ap(precision: np.ndarray, k: int) -> float | None:
    values = precision[:, :, k, 0, -1]  # all IoU thresholds and recalls, area all, 100 dets
    values = values[values > -1]
    return float(values.mean()) if values.size else None


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Pause the cyclic garbage collector (restoring its previous state afterwards).

    Indexing tens of thousands of annotation and result dicts triggers collections that
    walk every one of them again and again (a fifth of the C++ evaluator's time at 33k
    annotations); nothing built here forms cycles that need collecting meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def coco_evaluate(gt, results: Sequence[dict], iou_type: str = "segm", evaluator: str | None = None) -> dict:
    """COCO AP/AR of ``results`` against the geometry annotations of ``gt``.

    Annotations without ``segmentation`` (image-level labels) are left out of the ground
    truth; missing ``area``/``bbox``/``iscrowd`` are filled from the segmentation.
    Only categories with geometry annotations are evaluated.

    Args:
        gt: a ``pycocotools.coco.COCO``, a :class:`cococxr.coco.CocoDataset` or a COCO dict.
        results: result dicts (e.g. from :func:`masks_to_coco_results`).
        iou_type: ``"segm"`` or ``"bbox"`` (boxes come from the result masks when the
            results have no ``bbox``).
        evaluator: see :func:`resolve_evaluator` (default: faster-coco-eval when installed).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
        "ARm", "ARl", "per_category": {name: AP}, "evaluator": name}``. A value reported as -1
        (no ground truth in that area range) is None. Empty ``results`` give 0.0 for every
        value defined by the ground truth.
    """
    if iou_type not in ("segm", "bbox"):
        raise ConfigError(f"iou_type must be 'segm' or 'bbox', not {iou_type!r}")
    evaluator = resolve_evaluator(evaluator)
    with _cyclic_gc_paused():
        dataset = _geometry_dataset(gt)
        _complete_annotations(dataset)
        coco_gt = _quiet_coco(dataset, evaluator)
        cat_ids = sorted({a["category_id"] for a in dataset["annotations"]})
        unknown = sorted({r["image_id"] for r in results} - set(coco_gt.imgs))
        if unknown:
            raise CocoFormatError(f"coco_evaluate: results refer to image ids {unknown[:10]} "
                                  f"that are not in the ground truth")
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = _detections(coco_gt, results, evaluator, iou_type)
            scorer = _cocoeval(coco_gt, coco_dt, iou_type, evaluator)
            scorer.params.catIds = cat_ids
            scorer.evaluate()
            scorer.accumulate()
            scorer.summarize()
    out = {name: (None if value == -1 else float(value))
           for name, value in zip(COCO_STAT_NAMES, scorer.stats)}
    precision = scorer.eval["precision"]
    out["per_category"] = {coco_gt.cats[c]["name"]: _category_ap(precision, k)
                           for k, c in enumerate(cat_ids)}
    out["evaluator"] = evaluator
    return out


__all__ = ["COCO_STAT_NAMES", "EVALUATORS", "masks_to_coco_results", "resolve_evaluator", "coco_evaluate"]
