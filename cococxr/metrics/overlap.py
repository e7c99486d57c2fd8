"""Overlap and surface-distance metrics of masks: Dice, IoU, Hausdorff (HD95), per-class reports.

No TensorFlow here.

Masks are binarised before scoring: booleans as they are, integers as ``> 0``, floats
(probabilities) as ``> threshold`` (0.5 by default, as segmentation_models does). Batches
of masks are ``(N, H, W, K)`` (N images, K classes) or ``(N, H, W)`` (one class).

**Empty vs empty**: Dice and IoU of an empty prediction against an empty truth are 1.0
(nothing to find, nothing found); the Hausdorff distances are 0.0. When exactly one of
the two is empty, Dice/IoU are 0.0 and the Hausdorff distances are the diagonal of the
array extent (``sqrt(sum((shape * spacing) ** 2))``, the largest possible distance),
which keeps means finite.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from cococxr.errors import ConfigError


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


def as_batch(masks) -> np.ndarray:
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
    pred, true = as_batch(pred), as_batch(true)
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
    pred, true = as_batch(pred), as_batch(true)
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


__all__ = [
    "binarize",
    "dice",
    "iou",
    "as_batch",
    "overlap_per_image",
    "mean_dice",
    "mean_iou",
    "extent_diagonal",
    "hausdorff_95",
    "hausdorff_distance",
    "segmentation_report",
]
