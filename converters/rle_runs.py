"""Column-major runs <-> COCO RLE without building full masks.

COCO RLE counts run over the column-major flattened mask, exactly like column-major
Kaggle RLE, so the two convert into each other run by run: O(runs) instead of O(pixels).
The converters use this fast path for column-major CSVs (DSB 2018, Airbus); row-major
ones go through a mask. Runs are ``(starts0, lengths)`` int64 arrays, 0-based starts.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from cococxr.errors import RLEError


def merge_runs(starts0: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of runs: sorted, with overlapping or touching runs joined."""
    if starts0.size == 0:
        return starts0, lengths
    order = np.argsort(starts0, kind="stable")
    starts0, ends = starts0[order], (starts0 + lengths)[order]
    reach = np.maximum.accumulate(ends)
    first = np.concatenate(([True], starts0[1:] > reach[:-1]))
    run_starts = starts0[first]
    run_ends = reach[np.concatenate((np.flatnonzero(first)[1:] - 1, [ends.size - 1]))]
    return run_starts, run_ends - run_starts


def runs_to_coco(starts0: np.ndarray, lengths: np.ndarray, height: int, width: int) -> dict:
    """Compressed COCO RLE ``{"size", "counts": str}`` of sorted, disjoint column-major runs.

    The string equals ``pycocotools.mask.encode`` of the same mask.
    """
    n_pixels = height * width
    counts = np.empty(2 * starts0.size + 1, np.int64)
    counts[1::2] = lengths
    counts[0::2] = np.concatenate((starts0, [n_pixels])) - np.concatenate(([0], starts0 + lengths))
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools' encoder never ends on an empty background run
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def coco_counts(counts: str | list) -> np.ndarray:
    """Run lengths of a COCO RLE ``counts`` (compressed string or list).

    The string format: each count is little-endian 5-bit groups in characters 48..111
    (0x20 = more groups follow; 0x10 in the last group = negative); counts from the
    fourth on are stored as differences with the count two before.

    Raises:
        RLEError: a malformed string.
    """
    if isinstance(counts, list):
        return np.asarray(counts, np.int64)
    chars = np.frombuffer(counts.encode("ascii", errors="replace"), np.uint8).astype(np.int64) - 48
    if chars.size and (chars.min() < 0 or chars.max() > 63 or chars[-1] & 0x20):
        raise RLEError(f"malformed compressed COCO RLE counts {counts[:40]!r}")
    last = (chars & 0x20) == 0
    group_starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    shift = np.arange(chars.size) - np.repeat(group_starts, np.diff(np.append(group_starts, chars.size)))
    values = np.add.reduceat((chars & 0x1F) << (5 * shift), group_starts) if chars.size else chars
    negative = (chars[last] & 0x10) != 0
    values[negative] -= 1 << (5 * (shift[last][negative] + 1))
    values[3::2] = np.cumsum(values[1::2])[1:]
    values[4::2] = np.cumsum(values[2::2])[1:]
    return values


def coco_to_runs(segmentation: dict) -> tuple[np.ndarray, np.ndarray]:
    """Column-major runs ``(starts0, lengths)`` of a COCO RLE dict."""
    counts = coco_counts(segmentation["counts"])
    ends = np.cumsum(counts)
    lengths = counts[1::2]
    starts0 = ends[1::2] - lengths
    keep = lengths > 0
    return merge_runs(starts0[keep], lengths[keep])


def runs_to_kaggle(starts0: np.ndarray, lengths: np.ndarray) -> str:
    """Kaggle ``"start length ..."`` text (1-indexed starts) of sorted, disjoint runs."""
    return " ".join(map(str, np.stack((starts0 + 1, lengths), axis=1).ravel().tolist()))
