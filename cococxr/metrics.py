"""Evaluation metrics on numpy arrays: overlap, surface distance, COCO AP, classification.

No TensorFlow here. Conventions:

* Masks are binarised before scoring: booleans as they are, integers as ``> 0``,
  floats (probabilities) as ``> threshold`` (0.5 by default, as segmentation_models does).
* Batches of masks are ``(N, H, W, K)`` (N images, K classes) or ``(N, H, W)`` (one class).
* **Empty vs empty**: Dice and IoU of an empty prediction against an empty truth are 1.0
  (nothing to find, nothing found); the Hausdorff distances are 0.0. When exactly one of
  the two is empty, Dice/IoU are 0.0 and the Hausdorff distances are the diagonal of the
  array extent (``sqrt(sum((shape * spacing) ** 2))``, the largest possible distance),
  which keeps means finite.
"""
from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from cococxr.errors import CocoFormatError, ConfigError

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


# --------------------------------------------------------------------------- overlap
def binarize(mask, threshold: float = 0.5) -> np.ndarray:
    """Return ``mask`` as booleans (see the module conventions)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        return mask > threshold
    return mask > 0


def _sums(pred, true, threshold: float) -> tuple[int, int, int]:
    p, t = binarize(pred, threshold), binarize(true, threshold)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    return int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice(pred, true, threshold: float = 0.5) -> float:
    """Dice coefficient ``2|P∩T| / (|P| + |T|)`` of one mask pair; 1.0 when both are empty."""
    inter, n_pred, n_true = _sums(pred, true, threshold)
    return 1.0 if n_pred + n_true == 0 else 2.0 * inter / (n_pred + n_true)


def iou(pred, true, threshold: float = 0.5) -> float:
    """Intersection over union of one mask pair; 1.0 when both are empty."""
    inter, n_pred, n_true = _sums(pred, true, threshold)
    union = n_pred + n_true - inter
    return 1.0 if union == 0 else inter / union


def _as_batch(masks) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim == 3:
        return masks[..., None]
    if masks.ndim != 4:
        raise ValueError(f"expected masks of shape (N, H, W) or (N, H, W, K), got {masks.shape}")
    return masks


def overlap_per_image(pred, true, metric: str = "dice", threshold: float = 0.5) -> np.ndarray:
    """Dice or IoU of every image and class.

    Args:
        pred: ``(N, H, W, K)`` or ``(N, H, W)`` predicted masks or probabilities.
        true: the ground truth, same shape.
        metric: ``"dice"`` or ``"iou"``.
        threshold: binarisation threshold for float arrays.

    Returns:
        ``(N, K)`` float array.
    """
    fn = {"dice": dice, "iou": iou}.get(metric)
    if fn is None:
        raise ConfigError(f"metric must be 'dice' or 'iou', not {metric!r}")
    pred, true = _as_batch(pred), _as_batch(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {true.shape}")
    return np.array([[fn(pred[n, ..., k], true[n, ..., k], threshold)
                      for k in range(pred.shape[-1])] for n in range(pred.shape[0])])


def mean_dice(pred, true, threshold: float = 0.5) -> float:
    """Dice averaged over images, then over classes."""
    return float(overlap_per_image(pred, true, "dice", threshold).mean(axis=0).mean())


def mean_iou(pred, true, threshold: float = 0.5) -> float:
    """IoU averaged over images, then over classes."""
    return float(overlap_per_image(pred, true, "iou", threshold).mean(axis=0).mean())


# --------------------------------------------------------------------------- distances
def _spacing(ndim: int, spacing) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,))
    if np.any(spacing <= 0):
        raise ConfigError(f"spacing must be positive, got {spacing.tolist()}")
    return spacing


def extent_diagonal(shape: Sequence[int], spacing=None) -> float:
    """Length of the diagonal of an array of ``shape`` with voxel ``spacing``."""
    return float(np.sqrt(np.sum((np.asarray(shape) * _spacing(len(shape), spacing)) ** 2)))


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure)


def _distances_to(points: np.ndarray, target: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~target, sampling=spacing)[points]


def _empty_case(p: np.ndarray, t: np.ndarray, spacing) -> float | None:
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return extent_diagonal(p.shape, spacing)
    return None


def hausdorff_95(pred, true, spacing=None, threshold: float = 0.5) -> float:
    """95th percentile Hausdorff distance between the surfaces of two masks (2D or 3D).

    Surface points are the mask pixels removed by one erosion (face connectivity);
    the distances from each surface to the other are pooled and their 95th percentile
    taken, as MedPy's ``hd95`` does.

    Args:
        pred: predicted mask, any number of dimensions.
        true: ground truth mask, same shape.
        spacing: pixel size per axis (scalar or sequence), e.g. ``pixel_spacing`` in mm.
        threshold: binarisation threshold for float arrays.

    Returns:
        The distance in ``spacing`` units; 0.0 if both are empty, the extent diagonal
        if exactly one is.
    """
    p, t = binarize(pred, threshold), binarize(true, threshold)
    sp = _spacing(p.ndim, spacing)
    empty = _empty_case(p, t, sp)
    if empty is not None:
        return empty
    sp_, st_ = _surface(p), _surface(t)
    both = np.concatenate([_distances_to(sp_, st_, sp), _distances_to(st_, sp_, sp)])
    return float(np.percentile(both, 95))


def hausdorff_distance(pred, true, spacing=None, threshold: float = 0.5) -> float:
    """Hausdorff distance (maximum of both directed distances) between two masks.

    Exact over all foreground points (the same value as
    ``scipy.spatial.distance.directed_hausdorff`` on ``np.argwhere`` of each mask).
    Empty masks as in :func:`hausdorff_95`.
    """
    p, t = binarize(pred, threshold), binarize(true, threshold)
    sp = _spacing(p.ndim, spacing)
    empty = _empty_case(p, t, sp)
    if empty is not None:
        return empty
    return float(max(_distances_to(p, t, sp).max(), _distances_to(t, p, sp).max()))


def segmentation_report(pred, true, class_names: Sequence[str] | None = None,
                        spacing=None, threshold: float = 0.5) -> dict:
    """Per-class and mean Dice, IoU and HD95 of a batch.

    Args:
        pred: ``(N, H, W, K)`` or ``(N, H, W)`` predictions.
        true: ground truth, same shape.
        class_names: K names (default ``class0``...).
        spacing: pixel spacing for HD95 (one for the whole batch).
        threshold: binarisation threshold for float arrays.

    Returns:
        ``{"per_class": {name: {"dice", "iou", "hd95", "n_images"}}, "mean": {"dice",
        "iou", "hd95"}}``; each value is the mean over images, and the means over
        classes of those.
    """
    pred, true = _as_batch(pred), _as_batch(true)
    names = list(class_names or [f"class{k}" for k in range(pred.shape[-1])])
    if len(names) != pred.shape[-1]:
        raise ConfigError(f"{len(names)} class names for {pred.shape[-1]} mask channels")
    dices = overlap_per_image(pred, true, "dice", threshold)
    ious = overlap_per_image(pred, true, "iou", threshold)
    hd = np.array([[hausdorff_95(pred[n, ..., k], true[n, ..., k], spacing, threshold)
                    for k in range(pred.shape[-1])] for n in range(pred.shape[0])])
    per_class = {name: {"dice": float(dices[:, k].mean()), "iou": float(ious[:, k].mean()),
                        "hd95": float(hd[:, k].mean()), "n_images": int(pred.shape[0])}
                 for k, name in enumerate(names)}
    mean = {key: float(np.mean([c[key] for c in per_class.values()]))
            for key in ("dice", "iou", "hd95")}
    return {"per_class": per_class, "mean": mean}


# --------------------------------------------------------------------------- UW-Madison
def uw_madison_volume_score(pred, true, threshold: float = 0.5) -> dict:
    """UW-Madison GI Tract score parts of one case/day volume.

    Args:
        pred: ``(D, H, W, K)`` (slices, rows, columns, classes) or ``(D, H, W)``.
        true: ground truth, same shape.
        threshold: binarisation threshold for float arrays.

    Returns:
        ``{"dice": mean 2D Dice over slices and classes, "hausdorff": mean over classes of
        the 3D Hausdorff distance (voxel units) divided by the volume diagonal
        sqrt(D² + H² + W²), "score": 0.4 * dice + 0.6 * (1 - hausdorff), "n_slices"}``.
        Empty vs empty counts as perfect (Dice 1, distance 0); exactly one empty gives
        Dice 0 and normalised distance 1.
    """
    pred, true = _as_batch(pred), _as_batch(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {true.shape}")
    dice_value = float(overlap_per_image(pred, true, "dice", threshold).mean())
    diagonal = extent_diagonal(pred.shape[:3])
    hd = float(np.mean([hausdorff_distance(pred[..., k], true[..., k], None, threshold)
                        for k in range(pred.shape[-1])]) / diagonal)
    return {"dice": dice_value, "hausdorff": hd, "score": 0.4 * dice_value + 0.6 * (1 - hd),
            "n_slices": int(pred.shape[0])}


def uw_madison_score(volumes: Iterable[tuple], threshold: float = 0.5) -> dict:
    """The UW-Madison GI Tract competition score over several case/day volumes.

    Args:
        volumes: ``(pred, true)`` pairs, one per case/day (see
            :func:`uw_madison_volume_score`).
        threshold: binarisation threshold for float arrays.

    Returns:
        ``{"dice", "hausdorff", "score", "n_volumes"}``: Dice is the mean over every
        slice and class of every volume (the leaderboard's per-image mean); the
        normalised Hausdorff is the mean over volumes; ``score = 0.4 * dice + 0.6 *
        (1 - hausdorff)``.
    """
    parts = [uw_madison_volume_score(p, t, threshold) for p, t in volumes]
    if not parts:
        raise ConfigError("uw_madison_score needs at least one (pred, true) volume")
    slices = np.array([part["n_slices"] for part in parts], dtype=float)
    dice_value = float(np.average([part["dice"] for part in parts], weights=slices))
    hd = float(np.mean([part["hausdorff"] for part in parts]))
    return {"dice": dice_value, "hausdorff": hd, "score": 0.4 * dice_value + 0.6 * (1 - hd),
            "n_volumes": len(parts)}


# --------------------------------------------------------------------------- COCO
def _mask_score(prob: np.ndarray, mask: np.ndarray) -> float:
    if np.issubdtype(prob.dtype, np.floating):
        return float(prob[mask].mean())
    return 1.0


def masks_to_coco_results(image_ids: Sequence[int], masks, category_ids: Sequence[int],
                          scores=None, threshold: float = 0.5) -> list[dict]:
    """Turn per-image, per-class predicted masks into COCO result dicts.

    Args:
        image_ids: one COCO image id per prediction.
        masks: per image an ``(H, W, K)`` (or ``(H, W)`` for one class) array of
            probabilities or 0/1 values; images may differ in size.
        category_ids: K category ids, the category of each mask channel.
        scores: optional ``(N, K)`` confidences; by default the mean probability inside
            the predicted mask (1.0 for binary masks).
        threshold: binarisation threshold for float arrays.

    Returns:
        One ``{"image_id", "category_id", "segmentation": {"size", "counts": str},
        "score"}`` per non-empty mask (empty predictions are left out).
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
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            score = float(scores[n][k]) if scores is not None else _mask_score(probs[..., k], mask)
            results.append({"image_id": int(image_id), "category_id": int(category_id),
                            "segmentation": {"size": [int(s) for s in rle["size"]],
                                             "counts": rle["counts"].decode("utf-8")},
                            "score": score})
    return results


def _geometry_dataset(gt) -> dict:
    if hasattr(gt, "to_pycocotools"):
        gt = gt.to_pycocotools()
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
            rle = _to_rle(ann["segmentation"], img["height"], img["width"])
            ann.setdefault("area", float(mask_utils.area(rle)))
            ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        ann.setdefault("iscrowd", 0)
        completed.append(ann)
    dataset["annotations"] = completed


def _to_rle(segm, height: int, width: int) -> dict:
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, height, width)
    return segm


def _quiet_coco(dataset: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _detections(coco_gt, results: Sequence[dict]):
    if results:
        return coco_gt.loadRes(copy.deepcopy(list(results)))
    # loadRes cannot take an empty list; an empty result set scores 0 like any miss.
    return _quiet_coco({"images": coco_gt.dataset["images"],
                        "categories": coco_gt.dataset.get("categories", []),
                        "annotations": []})


def _category_ap(precision: np.ndarray, k: int) -> float | None:
    values = precision[:, :, k, 0, -1]  # all IoU thresholds and recalls, area all, 100 dets
    values = values[values > -1]
    return float(values.mean()) if values.size else None


def coco_evaluate(gt, results: Sequence[dict], iou_type: str = "segm") -> dict:
    """COCO AP/AR of ``results`` against the geometry annotations of ``gt``.

    Annotations without ``segmentation`` (image-level labels) are left out of the ground
    truth; missing ``area``/``bbox``/``iscrowd`` are filled from the segmentation.
    Only categories with geometry annotations are evaluated.

    Args:
        gt: a ``pycocotools.coco.COCO``, a :class:`cococxr.coco.CocoDataset` or a COCO dict.
        results: result dicts (e.g. from :func:`masks_to_coco_results`).
        iou_type: ``"segm"`` or ``"bbox"`` (boxes come from the result masks when the
            results have no ``bbox``).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
        "ARm", "ARl", "per_category": {name: AP}}``. A value pycocotools reports as -1
        (no ground truth in that area range) is None. Empty ``results`` give 0.0 for every
        value defined by the ground truth.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("segm", "bbox"):
        raise ConfigError(f"iou_type must be 'segm' or 'bbox', not {iou_type!r}")
    dataset = _geometry_dataset(gt)
    _complete_annotations(dataset)
    coco_gt = _quiet_coco(dataset)
    cat_ids = sorted({a["category_id"] for a in dataset["annotations"]})
    unknown = sorted({r["image_id"] for r in results} - set(coco_gt.imgs))
    if unknown:
        raise CocoFormatError(f"coco_evaluate: results refer to image ids {unknown[:10]} "
                              f"that are not in the ground truth")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = _detections(coco_gt, results)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.catIds = cat_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out = {name: (None if value == -1 else float(value))
           for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    precision = evaluator.eval["precision"]
    out["per_category"] = {coco_gt.cats[c]["name"]: _category_ap(precision, k)
                           for k, c in enumerate(cat_ids)}
    return out


# --------------------------------------------------------------------------- classification
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
    from sklearn.metrics import roc_auc_score

    labels = np.arange(prob.shape[1])
    if np.unique(y_true).size < prob.shape[1]:
        return None
    if prob.shape[1] == 2:
        return float(roc_auc_score(y_true, prob[:, 1]))
    return float(roc_auc_score(y_true, prob, multi_class="ovr", average="macro", labels=labels))


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
    from sklearn.metrics import roc_auc_score

    positives = y_true == k
    if positives.all() or not positives.any():
        return None
    return float(roc_auc_score(positives, prob[:, k]))


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
    from sklearn import metrics as skm

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


__all__ = [
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
    "classification_report_dict",
    "bootstrap_auc",
    "threshold_table",
    "tune_threshold",
]
