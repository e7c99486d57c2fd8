"""Lung post-processing, Dice per group of images, and a plausibility check (QC) of predicted lungs.

* :func:`postprocess_lungs` keeps the two largest connected components of a mask and
  fills their holes; :func:`postprocess_probabilities` applies it to probabilities
  (pixels removed drop to the threshold, holes filled rise just above it).
* :func:`group_dice` averages per-image Dice by the values of record keys such as
  ``view``, ``source`` or ``finding``, where the image records carry them.
* :func:`lung_qc` measures a predicted lung mask: its area as a fraction of the image,
  its count of connected components (of at least 0.5 % of the image), and the
  left/right balance (the smaller half's lung area over the larger's). Plausible
  frontal chest films have an area of 8-60 %, two components and a balance of at least
  0.4 (a heart on the left makes the left lung the smaller one); anything else is
  listed for a person to look at.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cococxr.io import read_image
from cococxr.reports import overlay_masks, write_png_rgb

GROUP_KEYS = ("view", "source", "finding")
QC_AREA = (0.08, 0.60)
QC_COMPONENTS = 2
QC_MIN_BALANCE = 0.4
QC_MIN_COMPONENT = 0.005


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label image and pixel count of each component (index 0: background)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels, stats[:, cv2.CC_STAT_AREA] if count else np.zeros(1, int)


def postprocess_lungs(mask: np.ndarray, keep: int = 2) -> np.ndarray:
    """The ``keep`` largest 8-connected components of a 2-D boolean mask, holes filled."""
    labels, areas = _components(mask)
    largest = np.argsort(areas[1:])[::-1][:keep] + 1
    kept = np.isin(labels, largest) & (labels > 0)
    # holes: background not connected to the border of the (padded) image
    padded = np.pad(~kept, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(padded, None, (0, 0), 0)
    return kept | padded[1:-1, 1:-1].astype(bool)


def postprocess_probabilities(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probabilities ``(H, W, K)`` whose thresholded masks are :func:`postprocess_lungs` of each channel."""
    out = np.array(prob, dtype=np.float32, copy=True)
    for k in range(out.shape[2]):
        mask = out[..., k] > threshold
        cleaned = postprocess_lungs(mask)
        out[..., k][mask & ~cleaned] = threshold
        out[..., k][cleaned & ~mask] = np.nextafter(np.float32(threshold), np.float32(1))
    return out


def group_dice(rows: list[dict], records: dict, keys=GROUP_KEYS) -> dict:
    """``{key: {value: {"images": n, "dice": mean}}}`` for each key some image record carries."""
    groups: dict = {}
    for key in keys:
        values: dict = {}
        for row in rows:
            value = records[row["image_id"]].get(key)
            if value is not None and value != "":
                values.setdefault(str(value), []).append(row["dice"])
        if values:
            groups[key] = {v: {"images": len(d), "dice": float(np.mean(d))} for v, d in sorted(values.items())}
    return groups


def lung_qc(mask: np.ndarray) -> dict:
    """Area fraction, component count, left/right balance of a 2-D lung mask, and why it is implausible."""
    mask = np.asarray(mask, bool)
    area = float(mask.mean())
    _, areas = _components(mask)
    components = int(np.sum(areas[1:] >= QC_MIN_COMPONENT * mask.size))
    half = mask.shape[1] // 2
    left, right = float(mask[:, :half].sum()), float(mask[:, half:].sum())
    balance = min(left, right) / max(left, right) if max(left, right) else 0.0
    reasons = []
    if not QC_AREA[0] <= area <= QC_AREA[1]:
        reasons.append(f"lung area {100 * area:.1f}% of the image (expected {100 * QC_AREA[0]:.0f}-"
                       f"{100 * QC_AREA[1]:.0f}%)")
    if components != QC_COMPONENTS:
        reasons.append(f"{components} lung component(s) (expected {QC_COMPONENTS})")
    if balance < QC_MIN_BALANCE:
        reasons.append(f"left/right balance {balance:.2f} (expected at least {QC_MIN_BALANCE})")
    return {"area_fraction": area, "components": components, "balance": balance, "reasons": reasons}


def write_qc_overlay(image_path: Path, mask: np.ndarray, caption: str, path: Path) -> None:
    """The image with the predicted lungs filled red and the caption, as a PNG."""
    out = overlay_masks(read_image(image_path), mask, colors=[(214, 39, 40)], alpha=0.35)
    cv2.putText(out, caption[:70], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    write_png_rgb(path, out)


__all__ = ["GROUP_KEYS", "postprocess_lungs", "postprocess_probabilities", "group_dice", "lung_qc",
           "write_qc_overlay"]
