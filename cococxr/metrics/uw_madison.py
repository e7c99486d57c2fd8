"""The UW-Madison GI Tract competition score: 0.4 x Dice + 0.6 x (1 - normalised 3D Hausdorff)."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cococxr.errors import ConfigError
from cococxr.metrics.overlap import as_batch, extent_diagonal, hausdorff_distance, overlap_per_image


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
    pred, true = as_batch(pred), as_batch(true)
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


__all__ = ["uw_madison_volume_score", "uw_madison_score"]
