"""Mask and run-count arrays shared by the RLE codecs.

Masks are ``uint8`` arrays of 0/1, shape ``(H, W)``, C-contiguous; on input any non-zero
pixel counts as foreground. *Counts* alternate background and foreground run lengths over
the flattened mask, starting with background: ``[gap, run, gap, run, ..., tail]``.
"""
from __future__ import annotations

import numbers
import os

import cv2
import numpy as np

from cococxr.errors import ConfigError

ORDERS = ("row", "column")


def binary_mask(mask) -> np.ndarray:
    """Return ``mask`` as a C-contiguous uint8 0/1 array of shape (H, W).

    Raises:
        ConfigError: the mask is not 2-D.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ConfigError(f"a mask must be 2-D (H, W); got shape {array.shape}")
    binary = array if array.dtype == np.bool_ else array != 0
    return np.ascontiguousarray(binary).view(np.uint8)


#: Default most pixels of one image or mask (16384 x 16384); ``COCOCXR_MAX_PIXELS`` changes it.
DEFAULT_MAX_PIXELS = 2**28
_HARD_MAX_PIXELS = 2**32 - 1  # pycocotools' 32-bit run lengths


def max_pixels() -> int:
    """The most pixels an image may claim before anything is allocated for it.

    ``COCOCXR_MAX_PIXELS`` (an integer; at most 2**32 - 1, pycocotools' limit) sets it,
    default :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        ConfigError: the variable is not an integer in 1..2**32 - 1.
    """
    text = os.environ.get("COCOCXR_MAX_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 < value <= _HARD_MAX_PIXELS:
        raise ConfigError(f"COCOCXR_MAX_PIXELS={text!r}: expected an integer 1..{_HARD_MAX_PIXELS}")
    return value


def check_size(height, width) -> tuple[int, int]:
    """Validate an image size and return it as Python ints.

    Raises:
        ConfigError: either value is not a positive integer, or height x width is over
            :func:`max_pixels` (checked before any array is allocated).
    """
    if not all(isinstance(v, numbers.Integral) and v > 0 for v in (height, width)):
        raise ConfigError(f"image size must be two positive integers; got {height!r}, {width!r}")
    limit = max_pixels()
    if int(height) * int(width) > limit:
        raise ConfigError(f"image size {height} x {width} = {int(height) * int(width)} pixels is over the limit of "
                          f"{limit} pixels; set COCOCXR_MAX_PIXELS to allow bigger images")
    return int(height), int(width)


def check_order(order: str) -> None:
    """Raise ConfigError unless ``order`` is ``"row"`` or ``"column"``."""
    if order not in ORDERS:
        raise ConfigError(f"RLE pixel order must be 'row' or 'column'; got {order!r}")


def value_runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a 1-D array into maximal runs of equal values.

    Returns:
        ``(starts, ends, values)``: 0-based start, exclusive end and value of each run.
    """
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    return starts, ends, flat[starts]


def counts_to_mask(counts: np.ndarray, height: int, width: int, order: str = "column") -> np.ndarray:
    """Expand alternating counts summing to ``height * width`` into a C-order mask.

    Args:
        counts: int64 ``[gap, run, gap, ...]``; the last background run may be left out
            (as pycocotools does); zero-length runs are allowed.
        height, width: the mask size.
        order: ``"column"`` (column-major: COCO RLE, column Kaggle RLE) or ``"row"``.

    Only the rows (``"row"``) or columns (``"column"``) from the first to the last
    foreground pixel are expanded (and transposed), so a small object in a large image
    costs little.
    """
    if counts.size % 2 == 0:
        counts = np.append(counts, 0)
    if counts.size == 1:
        return np.zeros((height, width), np.uint8)
    n_lines, line = (width, height) if order == "column" else (height, width)
    first = counts[0] // line  # first line (row or column) holding foreground
    last = (height * width - counts[-1] - 1) // line + 1  # one past the last such line
    if last <= first:  # only zero-length foreground runs
        return np.zeros((height, width), np.uint8)
    span = counts.copy()
    span[0] -= first * line
    span[-1] -= (n_lines - last) * line
    values = np.zeros(span.size, np.uint8)
    values[1::2] = 1
    lines = np.repeat(values, span).reshape(last - first, line)
    if order == "column":
        lines = cv2.transpose(lines)
    if last - first == n_lines:
        return lines
    mask = np.zeros((height, width), np.uint8)
    if order == "row":
        mask[first:last] = lines
    else:
        mask[:, first:last] = lines
    return mask


__all__ = ["ORDERS", "DEFAULT_MAX_PIXELS", "max_pixels", "binary_mask", "check_size", "check_order", "value_runs", "counts_to_mask"]
