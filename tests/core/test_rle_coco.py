"""cococxr.rle: COCO compressed counts strings and RLE dicts, with pycocotools as the oracle.

Both directions: our strings equal pycocotools' byte for byte, pycocotools' strings decode
with our decoder to the counts and mask pycocotools has; and every rejected input class
of :mod:`cococxr.rle.coco_strings` is refused, naming what is wrong.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from cococxr.coco import CocoDataset, validate_dataset
from cococxr.errors import CocoFormatError, RLEError
from cococxr.rle import (
    MAX_COUNT,
    check_counts,
    coco_rle_decode,
    coco_rle_encode,
    coco_to_runs,
    decode_counts,
    encode_counts,
    parse_counts,
    rle_area,
    rle_bbox,
    rle_counts,
    segmentation_to_mask,
    segmentation_to_rle,
)
from cococxr.rle.coco_strings import _encode_wide
from helpers import FAST, mask_counts, masks, pycoco_encode, pycoco_string, run_counts


# ------------------------------------------------------------- ours == pycocotools
@FAST
@given(masks())
def test_mask_encoding_equals_pycocotools_byte_for_byte(mask):
    reference = pycoco_encode(mask)
    rle = coco_rle_encode(mask)
    assert isinstance(rle["counts"], str)
    assert rle == {"size": list(mask.shape), "counts": reference["counts"].decode("ascii")}
    assert encode_counts(mask_counts(mask)) == reference["counts"].decode("ascii")


@FAST
@given(masks())
def test_pycocotools_strings_decode_to_its_counts_and_mask(mask):
    reference = pycoco_encode(mask)
    expected = mask_utils.decode(reference)
    counts = decode_counts(reference["counts"])
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, mask_counts(expected))
    for segm in (reference, {"size": reference["size"], "counts": reference["counts"].decode()}):
        decoded = coco_rle_decode(segm, *mask.shape)
        assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
        np.testing.assert_array_equal(decoded, expected)
        np.testing.assert_array_equal(segmentation_to_mask(segm, *mask.shape), expected)


@FAST
@given(run_counts())
def test_arbitrary_counts_round_trip_through_pycocotools_strings(counts):
    """Zero-length runs, long runs (multi-character counts, negative deltas) included."""
    text = pycoco_string(counts)
    np.testing.assert_array_equal(decode_counts(text), counts)
    np.testing.assert_array_equal(decode_counts(text.encode("ascii")), counts)
    assert encode_counts(counts) == text
    values = counts.copy()
    values[3:] -= counts[1:-2]
    assert _encode_wide(values) == text  # the wide encoder agrees where pycocotools is safe


@FAST
@given(st.lists(st.integers(0, MAX_COUNT), max_size=12))
def test_counts_of_any_32_bit_size_round_trip(counts):
    """Up to 7 characters a count, where pycocotools' own encoder overruns its buffer."""
    np.testing.assert_array_equal(decode_counts(encode_counts(counts)), np.array(counts, np.int64))


@FAST
@given(run_counts(max_count=200), st.booleans())
def test_arbitrary_counts_decode_to_pycocotools_mask(counts, tall):
    """Zero-length runs anywhere (also foreground-free counts), either image orientation."""
    n = int(counts.sum())
    if n == 0:
        return
    h, w = (n, 1) if tall else (1, n)
    segm = {"size": [h, w], "counts": pycoco_string(counts)}
    expected = mask_utils.decode({"size": [h, w], "counts": segm["counts"].encode()})
    np.testing.assert_array_equal(coco_rle_decode(segm, h, w), expected)
    np.testing.assert_array_equal(coco_rle_decode({"size": [h, w], "counts": counts.tolist()}, h, w), expected)


@pytest.mark.parametrize("counts, shape", [
    ([6, 0], (1, 6)), ([3, 0, 3], (1, 6)), ([3, 0, 3], (6, 1)), ([3, 0, 3], (2, 3)), ([0, 0, 6], (3, 2)),
    ([2, 0, 3, 0, 1], (1, 6)), ([0, 6], (2, 3)), ([5, 1, 0], (2, 3)),
])
def test_counts_with_zero_length_runs_only_decode_like_pycocotools(counts, shape):
    segm = {"size": list(shape), "counts": counts}
    expected = mask_utils.decode(mask_utils.frPyObjects(segm, *shape))
    np.testing.assert_array_equal(coco_rle_decode(segm, *shape), expected)


def test_delta_rule_starts_at_the_fourth_count():
    # rleToString: x = cnts[i]; if (i > 2) x -= cnts[i - 2]; written: 3, 5, 4, 6-5=1, 2-4=-2.
    # -2 is the 5-bit chunk 0b11110 (sign bit 0x10 set): chr(48 + 30) == "N".
    assert pycoco_string([3, 5, 4, 6, 2]) == encode_counts([3, 5, 4, 6, 2]) == "3541N"
    assert decode_counts("3541N").tolist() == [3, 5, 4, 6, 2]
    # 40 = 0b1_01000: chunk 8 with the continuation bit ("X"), then 1 ("1").
    assert decode_counts("X1").tolist() == [40]


@FAST
@given(masks())
def test_area_and_bbox_equal_pycocotools(mask):
    reference = pycoco_encode(mask)
    for rle in (coco_rle_encode(mask), reference):
        area, bbox = rle_area(rle), rle_bbox(rle)
        assert type(area) is int and area == int(mask_utils.area(reference)) == mask.sum()
        assert all(type(v) is float for v in bbox)
        assert bbox == mask_utils.toBbox(reference).tolist()


def test_uncompressed_and_bytes_counts_decode():
    mask = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)  # column-major: 0 1 1 0 1 0
    expected_counts = [1, 2, 1, 1, 1]
    np.testing.assert_array_equal(
        coco_rle_decode({"size": [2, 3], "counts": expected_counts}, 2, 3), mask)
    np.testing.assert_array_equal(coco_rle_decode(pycoco_encode(mask), 2, 3), mask)  # bytes counts
    assert rle_area({"size": [2, 3], "counts": expected_counts}) == 3
    assert rle_bbox({"size": [2, 3], "counts": expected_counts}) == [0.0, 0.0, 3.0, 2.0]
    zero_runs = {"size": [2, 3], "counts": [0, 0, 1, 0, 2, 3]}  # zero-length runs are valid
    np.testing.assert_array_equal(coco_rle_decode(zero_runs, 2, 3),
                                  mask_utils.decode(mask_utils.frPyObjects(zero_runs, 2, 3)))


def test_segmentation_to_rle_is_what_pycocotools_evaluates():
    polygons = [[1.0, 1.0, 8.0, 1.5, 7.0, 6.0, 2.0, 5.0]]
    rle = segmentation_to_rle(polygons, 9, 16)
    reference = mask_utils.merge(mask_utils.frPyObjects(polygons, 9, 16))
    assert rle == {"size": [9, 16], "counts": reference["counts"].decode()}
    uncompressed = {"size": [2, 3], "counts": [1, 2, 3]}
    assert segmentation_to_rle(uncompressed, 2, 3)["counts"] == mask_utils.frPyObjects(
        uncompressed, 2, 3)["counts"].decode()


# ------------------------------------------------------------------ rejected inputs
def _corrupt(text: str, kind: str, position: int) -> tuple[str, str]:
    """A valid string made invalid in one of the rejected ways, and what the error says."""
    if kind == "truncated":  # the last character gets the continuation bit
        return text + "P", "ends in the middle of a count"
    if kind == "overflow":  # 8 characters for one count, inserted between two counts
        return text[:position] + "P" * 7 + "0" + text[position:], "takes 8 characters, at most 7"
    if kind == "character":
        return text[:position] + "~" + text[position:], f"character {position} ('~') is outside '0'..'o'"
    if kind == "negative":  # a first count of -1: chunk 31 with the sign bit, chr(48 + 31)
        return "O" + text[1:], "counts[0] is -1; expected >= 0"
    raise AssertionError(kind)


@FAST
@given(masks(), st.sampled_from(["truncated", "overflow", "character", "negative"]), st.data())
def test_malformed_strings_are_rejected_naming_the_fault(mask, kind, data):
    text = coco_rle_encode(mask)["counts"]
    # Positions between two counts (after a character without the continuation bit).
    boundaries = [p for p in range(len(text) + 1) if p == 0 or not (ord(text[p - 1]) - 48) & 0x20]
    position = data.draw(st.sampled_from(boundaries))
    bad, expected = _corrupt(text, kind, position)
    with pytest.raises(RLEError) as info:
        decode_counts(bad)
    assert expected in str(info.value)
    with pytest.raises(RLEError, match="compressed COCO RLE"):
        coco_rle_decode({"size": list(mask.shape), "counts": bad}, *mask.shape)
    # The validator reports the decoder's reason, at the annotation's JSON path.
    issues = validate_dataset(_one_annotation(mask.shape, bad))
    [issue] = [i for i in issues if i.severity == "error"]
    assert issue.code == "bad_rle_counts" and issue.path == "annotations[0].segmentation.counts"
    assert "undecodable counts" in issue.message and expected in issue.message


@FAST
@given(masks(), st.integers(-3, 3).filter(bool))
def test_counts_not_covering_the_image_are_rejected(mask, extra):
    h, w = mask.shape
    counts = mask_counts(mask)
    counts[-1] = max(counts[-1] + extra, 0)
    text = encode_counts(counts)
    total = int(counts.sum())
    if total == h * w:
        return
    with pytest.raises(RLEError, match=f"counts sum to {total}; expected height\\*width = {h}\\*{w} = {h * w}"):
        coco_rle_decode({"size": [h, w], "counts": text}, h, w)
    with pytest.raises(RLEError, match=f"sum to {total}"):
        check_counts(decode_counts(text), h, w)
    with pytest.raises(CocoFormatError, match=f"counts covering {total} pixels.*height\\*width = {h * w}"):
        CocoDataset(_one_annotation((h, w), text))


def _one_annotation(shape: tuple[int, int], counts) -> dict:
    """A COCO dict with one image of ``shape`` and one RLE annotation with ``counts``."""
    h, w = shape
    return {"images": [{"id": 1, "file_name": "a.png", "height": h, "width": w}],
            "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": {"size": [h, w], "counts": counts}}]}


def test_coco_rle_size_mismatch_is_named():
    rle = coco_rle_encode(np.ones((4, 5), np.uint8))
    with pytest.raises(RLEError, match=r"size \[4, 5\] differs from the image size \[5, 4\]"):
        coco_rle_decode(rle, 5, 4)
    with pytest.raises(RLEError, match="differs"):
        segmentation_to_mask(rle, 4, 6)


@pytest.mark.parametrize("segm, match", [
    ({"size": [2, 3], "counts": [1, 2, 1]}, "sum to 4; expected height"),
    ({"size": [2, 3], "counts": "0:0"}, "sum to 10; expected height"),  # would overrun
    ({"size": [2, 3], "counts": "03"}, "sum to 3; expected height"),
    ({"size": [2, 3], "counts": ""}, "sum to 0; expected height"),
    ({"size": [2, 3], "counts": "0\x7f"}, r"character 1 \('\\x7f'\) is outside '0'..'o'"),
    ({"size": [2, 3], "counts": "0o"}, r"ends in the middle of a count \(counts\[1\]"),
    ({"size": [2, 3], "counts": "0" + "o" * 13 + "0"}, r"counts\[1\] takes 14 characters, at most 7"),
    ({"size": [2, 3], "counts": "4oooooo?"}, rf"counts\[1\] is {2**34 - 1}; expected <= {MAX_COUNT}"),
    ({"size": [2, 3], "counts": "0é"}, "ASCII"),
    ({"size": [2, 3], "counts": b"0\xe9"}, "outside '0'..'o'"),
    ({"size": [2, 3], "counts": "61O"}, r"counts\[2\] is -1; expected >= 0"),
    ({"size": [2, 3], "counts": "6100O"}, r"counts\[4\] is -1; expected >= 0"),  # via the delta rule
    ({"size": [2, 3], "counts": [1, -2, 7]}, r"counts\[1\] is -2; expected >= 0"),
    ({"size": [2, 3], "counts": [1, 2**32, 7]}, rf"counts\[1\] is {2**32}; expected <= {MAX_COUNT}"),
    ({"size": [2, 3], "counts": [1.5, 4.5]}, r"counts\[0\] is 1.5; expected a flat list of integers"),
    ({"size": [2, 3], "counts": [1, True, 4]}, r"counts\[1\] is True"),
    ({"size": [2, 3], "counts": [[1, 5]]}, "flat list of integers"),
    ({"size": [2, 3], "counts": (1, 5)}, "string or a list; got tuple"),
    ({"size": [2, 3], "counts": 7}, "string or a list"),
    ({"size": [2], "counts": "6"}, "size"),
    ({"counts": "6"}, "'size' and 'counts'"),
])
def test_malformed_coco_rle(segm, match):
    with pytest.raises(RLEError, match=match):
        coco_rle_decode(segm, 2, 3)


def test_every_counts_reader_agrees():
    """The decoder, the dict reader, the runs converter and the validator share one rule set."""
    good, bad = "05", "0o"
    assert parse_counts(good).tolist() == [0, 5]
    for reader in (lambda c: parse_counts(c), lambda c: rle_counts({"size": [1, 5], "counts": c}),
                   lambda c: coco_to_runs({"size": [1, 5], "counts": c})):
        reader(good)
        with pytest.raises(RLEError, match="middle of a count"):
            reader(bad)
    data = _one_annotation((1, 5), good)
    assert validate_dataset(data) == []
    broken = copy.deepcopy(data)
    broken["annotations"][0]["segmentation"]["counts"] = bad
    assert "middle of a count" in validate_dataset(broken)[0].message


def test_encode_counts_rejects_out_of_range_counts():
    with pytest.raises(RLEError, match=r"counts\[1\] is -1"):
        encode_counts([3, -1, 4])
    with pytest.raises(RLEError, match=rf"counts\[0\] is {2**32}"):
        encode_counts([2**32])
    with pytest.raises(RLEError, match="1-D"):
        encode_counts([[1, 2]])
    with pytest.raises(RLEError, match="integers in 0..4294967295"):
        encode_counts([2**64])
