"""Runs: foreground ``(starts0, lengths)`` int64 arrays, 0-based starts, over a flattened mask.

COCO RLE counts run over the column-major flattened mask, exactly like column-major
Kaggle RLE, so the two convert into each other run by run: O(runs) instead of O(pixels),
with no mask built. The converters use this fast path for column-major CSVs (DSB 2018,
Airbus); row-major ones go through a mask.
"""
from __future__ import annotations

import numpy as np

from cococxr.rle.coco_strings import encode_counts, rle_counts


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


def runs_to_counts(starts0: np.ndarray, lengths: np.ndarray, n_pixels: int) -> np.ndarray:
    """Alternating counts ``[gap, run, gap, run, ..., tail]`` of sorted, disjoint runs."""
    counts = np.empty(2 * starts0.size + 1, np.int64)
    counts[1::2] = lengths
    counts[0::2] = np.concatenate((starts0, [n_pixels])) - np.concatenate(([0], starts0 + lengths))
    return counts


def counts_to_runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of alternating counts: the non-empty foreground runs, sorted and disjoint.

    Runs separated by a zero-length background run come out as two touching runs; pass
    them through :func:`merge_runs` to join them.
    """
    ends = np.cumsum(counts)
    lengths = counts[1::2]
    starts0 = ends[1::2] - lengths
    keep = lengths > 0
    return starts0[keep], lengths[keep]


def runs_to_coco(starts0: np.ndarray, lengths: np.ndarray, height: int, width: int) -> dict:
    """Compressed COCO RLE ``{"size", "counts": str}`` of sorted, disjoint column-major runs.

    The string equals ``pycocotools.mask.encode`` of the same mask.
    """
    counts = runs_to_counts(starts0, lengths, height * width)
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools' encoder never ends on an empty background run
    return {"size": [height, width], "counts": encode_counts(counts)}


def coco_to_runs(segmentation: dict) -> tuple[np.ndarray, np.ndarray]:
    """Column-major runs ``(starts0, lengths)`` of a COCO RLE dict, merged.

    Raises:
        RLEError: a malformed RLE (see :func:`cococxr.rle.coco_strings.rle_counts`).
    """
    counts, _ = rle_counts(segmentation)
    return merge_runs(*counts_to_runs(counts))


def runs_to_kaggle(starts0: np.ndarray, lengths: np.ndarray) -> str:
    """Kaggle ``"start length ..."`` text (1-indexed starts) of sorted, disjoint runs."""
    return " ".join(map(str, np.stack((starts0 + 1, lengths), axis=1).ravel().tolist()))


__all__ = ["merge_runs", "runs_to_counts", "counts_to_runs", "runs_to_coco", "coco_to_runs", "runs_to_kaggle"]
