"""Real Kaggle RLE: the Data Science Bowl 2018 CSV against its per-nucleus mask files.

stage1_train_labels.csv is column-major, 1-indexed "start length" pairs, one row per
nucleus; every row must decode to exactly one of the image's mask PNGs, every PNG must
be used once, and re-encoding a PNG must give the CSV string back character for character.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from cococxr.rle import coco_rle_decode, coco_rle_encode, kaggle_rle_decode, kaggle_rle_encode
from helpers import SHARED_DATA

DSB = SHARED_DATA / "dsb2018-rle"
CSV = DSB / "stage1_train_labels.csv"


def _rows_by_image() -> dict[str, list[str]]:
    """ImageId -> its EncodedPixels strings, in CSV order."""
    rows = defaultdict(list)
    with open(CSV, newline="") as fh:
        for row in csv.DictReader(fh):
            rows[row["ImageId"]].append(row["EncodedPixels"])
    return dict(rows)


ROWS = _rows_by_image() if CSV.is_file() else {}
pytestmark = pytest.mark.skipif(not ROWS, reason=f"real data not available at {DSB}")


def _read_mask(path: Path) -> np.ndarray:
    """One mask PNG as stored (0/255, single channel)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels is not None and pixels.ndim == 2, path
    return pixels


def _read_masks(image_id: str) -> dict[str, np.ndarray]:
    """Mask file name -> mask (non-zero = nucleus) for one image, read in parallel."""
    paths = sorted((DSB / "stage1_train" / image_id / "masks").glob("*.png"))
    with ThreadPoolExecutor() as pool:  # cv2 releases the GIL while decoding PNGs
        return dict(zip((p.name for p in paths), pool.map(_read_mask, paths)))


def test_csv_covers_every_image_folder():
    folders = {p.name for p in (DSB / "stage1_train").iterdir() if p.is_dir()}
    assert folders == set(ROWS) and len(folders) == 46
    assert sum(len(v) for v in ROWS.values()) == 3790


@pytest.mark.parametrize("image_id", sorted(ROWS))
def test_rows_decode_to_the_mask_files_and_reencode_identically(image_id):
    masks = _read_masks(image_id)
    shape = next(iter(masks.values())).shape
    by_encoding = defaultdict(list)  # files with equal pixels have equal encodings
    for name, mask in masks.items():
        assert mask.shape == shape, name
        by_encoding[kaggle_rle_encode(mask, order="column")].append(name)
    used = []
    for row, text in enumerate(ROWS[image_id]):
        matches = by_encoding.get(text, [])
        assert len(matches) == 1, f"{image_id} row {row}: re-encodes {len(matches)} mask files"
        decoded = kaggle_rle_decode(text, shape, order="column")
        assert np.array_equal(decoded, masks[matches[0]] > 0), f"{image_id} row {row}: pixels"
        used += matches
    assert sorted(used) == sorted(masks), f"{image_id}: mask files not used exactly once"


def test_coco_rle_round_trip_on_real_masks():
    image_id = sorted(ROWS)[0]
    for mask in _read_masks(image_id).values():
        binary = (mask > 0).astype(np.uint8)
        np.testing.assert_array_equal(coco_rle_decode(coco_rle_encode(mask), *mask.shape), binary)
