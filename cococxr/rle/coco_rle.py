"""COCO RLE dicts ``{"size": [h, w], "counts": ...}``: encode, decode, area and bounding box.

Decoding goes through this package's own counts codec (:mod:`cococxr.rle.coco_strings`);
encoding, area and bbox go through pycocotools, the reference implementation. The
pycocotools form of an RLE has ``bytes`` counts; the JSON form, ``str`` counts.
"""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cococxr.rle.arrays import binary_mask, check_size, counts_to_mask
from cococxr.rle.coco_strings import encode_counts, rle_counts


def pycoco_rle(segm, height: int | None = None, width: int | None = None) -> dict:
    """Validate a COCO RLE dict and return it in pycocotools' form (bytes counts).

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: the image size the RLE must have; None to take it from ``segm``.

    Raises:
        RLEError: as :func:`cococxr.rle.coco_strings.rle_counts`.
    """
    counts, (h, w) = rle_counts(segm, height, width)
    raw = segm["counts"]
    if isinstance(raw, str):
        raw = raw.encode("ascii")  # validated: ASCII
    elif isinstance(raw, list):
        raw = encode_counts(counts).encode("ascii")
    return {"size": [h, w], "counts": raw}


def json_rle(rle: dict) -> dict:
    """pycocotools' RLE (bytes counts) as JSON-ready ``{"size": [h, w], "counts": str}``."""
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def pycoco_from_counts(counts: np.ndarray, height: int, width: int) -> dict:
    """Compress alternating counts ``[gap, run, ..., tail]`` into pycocotools' RLE form."""
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools' encoder never ends on an empty background run
    return {"size": [height, width], "counts": encode_counts(counts).encode("ascii")}


def decode_pycoco(rle: dict, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a validated pycocotools RLE to a C-contiguous uint8 (H, W) mask, by pycocotools.

    With ``size`` (height, width), the mask is resized with ``cv2.INTER_NEAREST_EXACT``
    (as :func:`cococxr.preprocess.resize_mask`) before the transpose, which then moves
    only the small array.
    """
    columns = mask_utils.decode(rle).T  # pycocotools decodes in Fortran order: .T is C-contiguous
    if size is not None:
        columns = cv2.resize(columns, (int(size[0]), int(size[1])), interpolation=cv2.INTER_NEAREST_EXACT)
    return cv2.transpose(columns)


def coco_rle_encode(mask) -> dict:
    """Encode a mask as compressed COCO RLE.

    Returns:
        ``{"size": [h, w], "counts": str}`` (the string pycocotools.mask.encode makes).
    """
    binary = binary_mask(mask)
    return json_rle(mask_utils.encode(cv2.transpose(binary).T))  # .T of it: Fortran order


def coco_rle_decode(segm: dict, height: int, width: int) -> np.ndarray:
    """Decode a compressed or uncompressed COCO RLE.

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: the image size; ``segm["size"]`` must equal it.

    Returns:
        uint8 0/1 array (height, width), C-contiguous.

    Raises:
        RLEError: wrong size, counts that do not cover exactly height*width pixels, or
            a malformed compressed string.
    """
    height, width = check_size(height, width)
    counts, _ = rle_counts(segm, height, width)
    return counts_to_mask(counts, height, width, "column")


def rle_area(rle: dict) -> int:
    """Foreground pixel count of a COCO RLE (compressed or uncompressed), by pycocotools."""
    return int(mask_utils.area(pycoco_rle(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """Bounding box ``[x, y, w, h]`` of a COCO RLE, by pycocotools (zeros when empty)."""
    return [float(v) for v in mask_utils.toBbox(pycoco_rle(rle))]


__all__ = [
    "coco_rle_encode",
    "coco_rle_decode",
    "rle_area",
    "rle_bbox",
    "pycoco_rle",
    "json_rle",
    "pycoco_from_counts",
    "decode_pycoco",
]
