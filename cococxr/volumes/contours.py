"""Planar contours (RTSTRUCT) -> pixel masks, by the pixel-centre rule.

A pixel belongs to a contour when its centre lies inside the polygon (even-odd rule),
pixel centres being at whole (column, row) coordinates. That is the rule of
``skimage.draw.polygon`` and ``matplotlib.path.Path.contains_points``; this vectorised
scanline gives the same pixels on the NSCLC lung contours (0 of 1.9 M differ) several
times faster. Neither ``cv2.fillPoly`` (it also paints the pixels the outline touches:
+1.7 to +12.6 % area) nor pycocotools' polygons (they are sampled on a 5x grid: per-slice
Dice down to 0.977) follow it.

Several contours of one structure on one slice combine by XOR, so an inner contour
cuts a hole (the convention of the DICOM RT planning systems' exports and of dicompyler,
plastimatch and rt-utils).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

_MAX_CELLS = 1 << 22  # rows x edges evaluated at once


def _fill_rows(x0, y0, x1, y1, rows: np.ndarray, width: int) -> np.ndarray:
    """Inside-mask ``(len(rows), width)`` of scan rows ``rows`` (pixel-centre y values)."""
    ys = rows[:, None].astype(np.float64)
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    crossing = (ys >= low) & (ys < high)  # half-open: a vertex on the line is counted once
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = np.where(crossing, x0 + (ys - y0) * (x1 - x0) / (y1 - y0), np.inf)
    xs.sort(axis=1)
    if xs.shape[1] % 2:
        xs = np.concatenate([xs, np.full((len(rows), 1), np.inf)], axis=1)
    first = np.ceil(xs[:, 0::2])
    last = np.floor(xs[:, 1::2])
    valid = np.isfinite(last)
    first = np.clip(np.where(valid, first, 0), 0, width)
    last = np.clip(np.where(valid, last, -1), -1, width - 1)
    valid &= first <= last
    which, _ = np.nonzero(valid)
    diff = np.zeros((len(rows), width + 1), np.int32)
    np.add.at(diff, (which, first[valid].astype(np.intp)), 1)
    np.add.at(diff, (which, last[valid].astype(np.intp) + 1), -1)
    return np.cumsum(diff[:, :width], axis=1, dtype=np.int32) > 0


def fill_polygon(columns, rows, height: int, width: int) -> np.ndarray:
    """uint8 0/1 mask of the pixels whose centres lie inside one closed polygon.

    Args:
        columns, rows: vertex coordinates (fractional pixels; the polygon closes itself).
        height, width: the mask size; parts outside are clipped.
    """
    x = np.asarray(columns, dtype=np.float64).ravel()
    y = np.asarray(rows, dtype=np.float64).ravel()
    mask = np.zeros((height, width), np.uint8)
    if len(x) < 3 or len(x) != len(y) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return mask
    first, last = max(int(np.ceil(y.min())), 0), min(int(np.floor(y.max())), height - 1)
    if last < first or x.max() < 0 or x.min() > width - 1:
        return mask
    x0, y0, x1, y1 = x, y, np.roll(x, -1), np.roll(y, -1)
    step = max(1, _MAX_CELLS // len(x))
    for start in range(first, last + 1, step):
        rows_ = np.arange(start, min(start + step, last + 1))
        mask[rows_] = _fill_rows(x0, y0, x1, y1, rows_, width)
    return mask


def fill_polygons(polygons: Iterable[tuple[np.ndarray, np.ndarray]], height: int, width: int) -> np.ndarray:
    """XOR of :func:`fill_polygon` over ``(columns, rows)`` polygons (inner contours are holes)."""
    mask = np.zeros((height, width), np.uint8)
    for columns, rows in polygons:
        mask ^= fill_polygon(columns, rows, height, width)
    return mask


def outside_image(columns, rows, height: int, width: int) -> bool:
    """True when part of the polygon lies beyond the pixel centres' range (it is clipped)."""
    x, y = np.asarray(columns), np.asarray(rows)
    return bool(x.min() < -0.5 or y.min() < -0.5 or x.max() > width - 0.5 or y.max() > height - 0.5)


__all__ = ["fill_polygon", "fill_polygons", "outside_image"]
