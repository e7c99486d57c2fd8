"""cococxr.rle.runs: runs <-> COCO RLE and Kaggle text, exact, with pycocotools as the oracle."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from cococxr.errors import RLEError
from cococxr.rle import (
    coco_rle_encode,
    coco_to_runs,
    counts_to_runs,
    kaggle_rle_encode,
    merge_runs,
    parse_kaggle_rle,
    runs_to_coco,
    runs_to_counts,
    runs_to_kaggle,
)
from helpers import FAST, mask_counts, masks, pycoco_encode


@st.composite
def run_sets(draw) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Arbitrary (possibly overlapping, touching, unsorted) column-major runs and a size."""
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    n = h * w
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=12))
    starts0 = np.array([s for s, _ in pairs], np.int64)
    lengths = np.array([min(length, n - s) for s, length in pairs], np.int64)
    return starts0, lengths, h, w


def paint(starts0: np.ndarray, lengths: np.ndarray, h: int, w: int) -> np.ndarray:
    """The (h, w) mask of column-major runs, pixel by pixel."""
    flat = np.zeros(h * w, np.uint8)
    for start, length in zip(starts0.tolist(), lengths.tolist()):
        flat[start:start + length] = 1
    return flat.reshape((h, w), order="F")


@FAST
@given(run_sets())
def test_merged_runs_are_the_union_and_canonical(case):
    starts0, lengths, h, w = case
    merged = merge_runs(starts0, lengths)
    np.testing.assert_array_equal(paint(*merged, h, w), paint(starts0, lengths, h, w))
    if merged[0].size:
        ends = merged[0] + merged[1]
        assert (merged[1] >= 1).all() and (merged[0][1:] > ends[:-1]).all()  # sorted, not touching


@FAST
@given(run_sets())
def test_runs_to_coco_equals_pycocotools_of_the_mask(case):
    starts0, lengths, h, w = case
    mask = paint(starts0, lengths, h, w)
    rle = runs_to_coco(*merge_runs(starts0, lengths), h, w)
    assert rle == {"size": [h, w], "counts": pycoco_encode(mask)["counts"].decode("ascii")}


@FAST
@given(masks())
def test_coco_to_runs_and_back_is_exact(mask):
    h, w = mask.shape
    rle = coco_rle_encode(mask)
    starts0, lengths = coco_to_runs(rle)
    assert starts0.dtype == lengths.dtype == np.int64
    np.testing.assert_array_equal(paint(starts0, lengths, h, w), mask)
    assert runs_to_coco(starts0, lengths, h, w) == rle
    assert runs_to_kaggle(starts0, lengths) == kaggle_rle_encode(mask, "column")
    np.testing.assert_array_equal(np.stack(parse_kaggle_rle(runs_to_kaggle(starts0, lengths))),
                                  np.stack((starts0, lengths)))
    counts = runs_to_counts(starts0, lengths, h * w)
    np.testing.assert_array_equal(counts[:mask_counts(mask).size], mask_counts(mask))
    np.testing.assert_array_equal(np.stack(counts_to_runs(counts)), np.stack((starts0, lengths)))


def test_zero_length_background_runs_join_touching_runs():
    uncompressed = {"size": [1, 8], "counts": [1, 2, 0, 3, 2]}  # pixels 1..5 in two runs
    starts0, lengths = coco_to_runs(uncompressed)
    assert starts0.tolist() == [1] and lengths.tolist() == [5]
    assert runs_to_coco(starts0, lengths, 1, 8)["counts"] == mask_utils.encode(
        np.asfortranarray(mask_utils.decode(mask_utils.frPyObjects(uncompressed, 1, 8))))["counts"].decode()


def test_coco_to_runs_rejects_malformed_rles():
    with pytest.raises(RLEError, match="sum to 5; expected height"):
        coco_to_runs({"size": [2, 3], "counts": [1, 2, 2]})
    with pytest.raises(RLEError, match="middle of a count"):
        coco_to_runs({"size": [2, 3], "counts": "0P"})
