"""cococxr.rle: Kaggle RLE (both pixel orders), polygons and segmentation dispatch.

COCO RLE strings and dicts are tested in test_rle_coco.py, runs in test_rle_runs.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from cococxr.errors import CocoFormatError, ConfigError, RLEError
from cococxr.rle import (
    coco_rle_encode,
    kaggle_rle_decode,
    kaggle_rle_encode,
    parse_kaggle_rle,
    polygons_to_mask,
    segmentation_to_mask,
)
from helpers import FAST, canonical_rles, masks


# ----------------------------------------------------------------- property tests
@FAST
@given(masks(), st.sampled_from(["row", "column"]))
def test_kaggle_rle_round_trip_is_exact(mask, order):
    text = kaggle_rle_encode(mask, order)
    assert kaggle_rle_encode(np.asfortranarray(mask), order) == text  # memory layout is irrelevant
    decoded = kaggle_rle_decode(text, mask.shape, order)
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, mask)


@FAST
@given(canonical_rles(), st.sampled_from(["row", "column"]))
def test_canonical_kaggle_string_round_trip_is_identical(rle_and_shape, order):
    text, shape = rle_and_shape
    assert kaggle_rle_encode(kaggle_rle_decode(text, shape, order), order) == text


@FAST
@given(masks())
def test_row_and_column_orders_relate_by_transpose(mask):
    assert kaggle_rle_encode(mask, "row") == kaggle_rle_encode(mask.T, "column")
    text = kaggle_rle_encode(mask, "column")
    h, w = mask.shape
    np.testing.assert_array_equal(kaggle_rle_decode(text, (h, w), "column"),
                                  kaggle_rle_decode(text, (w, h), "row").T)


@FAST
@given(masks())
def test_parse_matches_the_mask(mask):
    starts0, lengths = parse_kaggle_rle(kaggle_rle_encode(mask, "row"), mask.size)
    assert starts0.dtype == lengths.dtype == np.int64
    flat = np.zeros(mask.size, np.uint8)
    for start, length in zip(starts0.tolist(), lengths.tolist()):
        flat[start:start + length] = 1
    np.testing.assert_array_equal(flat.reshape(mask.shape), mask)


# --------------------------------------------------------------------- known cases
def test_pixel_orders_on_a_known_mask():
    mask = np.array([[1, 1, 0],
                     [0, 0, 1]], np.uint8)
    assert kaggle_rle_encode(mask, "row") == "1 2 6 1"
    assert kaggle_rle_encode(mask, "column") == "1 1 3 1 6 1"  # down the columns
    assert kaggle_rle_encode(mask) == "1 1 3 1 6 1"  # column-major is the default
    np.testing.assert_array_equal(kaggle_rle_decode("1 2 6 1", (2, 3), "row"), mask)
    np.testing.assert_array_equal(kaggle_rle_decode("1 1 3 1 6 1", (2, 3)), mask)


def test_adjacent_runs_decode_but_reencode_merged():
    assert kaggle_rle_encode(kaggle_rle_decode("1 2 3 2", (1, 6), "row"), "row") == "1 4"


def test_non_binary_and_bool_masks_encode_like_0_1():
    mask = np.array([[0, 255], [7, 0]], np.uint8)
    assert kaggle_rle_encode(mask) == kaggle_rle_encode(mask != 0) == "2 2"
    assert coco_rle_encode(mask.astype(bool)) == coco_rle_encode((mask != 0).astype(np.uint8))


def test_whitespace_is_flexible():
    for text in ("1 2 6 1", "  1 2\n6\t1  ", "1\u00a02 6 1", b"1 2 6 1"):
        assert kaggle_rle_decode(text, (2, 3), "row").sum() == 3


@pytest.mark.parametrize("empty", ["", "   ", None, float("nan"), np.nan, "-1", " -1 ", -1])
def test_empty_forms(empty):
    starts0, lengths = parse_kaggle_rle(empty, 6)
    assert starts0.size == lengths.size == 0
    np.testing.assert_array_equal(kaggle_rle_decode(empty, (2, 3)), np.zeros((2, 3), np.uint8))


def test_empty_mask_encodes_to_empty_string():
    assert kaggle_rle_encode(np.zeros((3, 4), np.uint8)) == ""
    assert kaggle_rle_encode(np.ones((3, 4), np.uint8)) == "1 12"


# --------------------------------------------------------------------- malformed RLE
@pytest.mark.parametrize("text, index, token, expected", [
    ("1 2 3", 2, "3", "no length"),  # odd token count
    ("1 2 x 4", 2, "x", "digits only"),
    ("1 2 3 1.5", 3, "1.5", "digits only"),
    ("1 -2", 1, "-2", "digits only"),
    ("1 2 +3 1", 2, "+3", "digits only"),
    ("1 0", 1, "0", "length >= 1"),
    ("0 2", 0, "0", "start >= 1"),
    ("5 2 3 1", 2, "3", "strictly increase"),
    ("5 2 5 1", 2, "5", "strictly increase"),
    ("1 5 3 2", 2, "3", "overlap"),
    ("1 2 9 3", 3, "3", "past the last pixel 10"),
    ("1 2 11 1", 2, "11", "start <= 10"),
    ("99999999999999999999 1", 0, "99999999999999999999", "below 2**62"),
])
def test_malformed_rle_names_the_token(text, index, token, expected):
    with pytest.raises(RLEError) as info:
        parse_kaggle_rle(text, 10)
    message = str(info.value)
    assert f"token {index} ({token!r}" in message
    assert expected in message
    with pytest.raises(RLEError, match=f"token {index} "):
        kaggle_rle_decode(text, (2, 5))


@FAST
@given(canonical_rles(), st.data())
def test_corrupted_token_is_named(rle_and_shape, data):
    text, shape = rle_and_shape
    tokens = text.split()
    if not tokens:
        return
    index = data.draw(st.integers(0, len(tokens) - 1))
    bad = data.draw(st.sampled_from(["0", "-3", "a", "2.5", "1e3"]))
    tokens[index] = bad
    with pytest.raises(RLEError, match=f"token {index} \\({bad!r}"):
        kaggle_rle_decode(" ".join(tokens), shape)


def test_rle_must_be_text():
    with pytest.raises(RLEError, match="string"):
        parse_kaggle_rle(12)


def test_bad_shape_and_order():
    with pytest.raises(ConfigError, match="order"):
        kaggle_rle_decode("1 1", (2, 2), order="C")
    with pytest.raises(ConfigError, match="order"):
        kaggle_rle_encode(np.ones((2, 2)), order="F")
    with pytest.raises(ConfigError, match="positive"):
        kaggle_rle_decode("1 1", (0, 2))
    with pytest.raises(ConfigError, match="2-D"):
        kaggle_rle_encode(np.ones((2, 2, 3)))


# ---------------------------------------------------------------------- polygons
def test_polygons_match_pycocotools():
    polygons = [[1.0, 1.0, 8.0, 1.5, 7.0, 6.0, 2.0, 5.0], [10, 2, 14, 2, 12, 7]]
    reference = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, 9, 16)))
    np.testing.assert_array_equal(polygons_to_mask(polygons, 9, 16), reference)
    np.testing.assert_array_equal(segmentation_to_mask(polygons, 9, 16), reference)
    assert polygons_to_mask([], 9, 16).sum() == 0


@pytest.mark.parametrize("polygons, match", [
    ([[1, 1, 5, 5]], "polygon 0 has 4 coordinates"),  # pycocotools would read a bbox
    ([[1, 1, 5, 5, 3, 8], [1, 2, 3, 4, 5]], "polygon 1 has 5 coordinates"),
    ([[1, 1, 5, "a", 3, 8]], "non-numeric"),
    ([[1, 1, 5, float("nan"), 3, 8]], "non-finite"),
    ([1, 1, 5, 5, 3, 8], "flat list"),
])
def test_malformed_polygons(polygons, match):
    with pytest.raises(CocoFormatError, match=match):
        polygons_to_mask(polygons, 10, 10)


def test_segmentation_of_unknown_type():
    with pytest.raises(CocoFormatError, match="list of polygons or an RLE dict"):
        segmentation_to_mask("abc", 3, 3)
