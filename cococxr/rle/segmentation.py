"""COCO segmentations (polygons or RLE) -> RLE and masks, with pycocotools' rasteriser.

Polygons ``[[x1, y1, x2, y2, ...], ...]`` are unioned and rasterised by pycocotools
(``frPyObjects`` + ``merge``), the raster ``COCOeval`` and ``COCO.annToMask`` use; RLE
dicts are validated and decoded by :mod:`cococxr.rle.coco_rle`.
"""
from __future__ import annotations

import numbers

import numpy as np
from pycocotools import mask as mask_utils

from cococxr.errors import CocoFormatError
from cococxr.rle.arrays import check_size
from cococxr.rle.coco_rle import coco_rle_decode, decode_pycoco, json_rle, pycoco_from_counts, pycoco_rle


def polygon_outside_problem(coords, height: int, width: int) -> str | None:
    """Describe a vertex more than 10 image sizes outside the image, or return None.

    pycocotools allocates memory in proportion to the edge lengths (gigabytes for a vertex
    at 1e8, a crash past 4e8), so such polygons are refused rather than rasterised.
    """
    coords = np.asarray(coords, dtype=np.float64)
    xs, ys = coords[0::2], coords[1::2]
    margin = 10 * max(height, width)
    bad = np.flatnonzero((xs < -margin) | (xs > width + margin) | (ys < -margin) | (ys > height + margin))
    if not bad.size:
        return None
    k = bad[0]
    return (f"has vertex {k} ({xs[k]:g}, {ys[k]:g}) more than 10 image sizes outside the {width}x{height} "
            f"image (x must be in [{-margin}, {width + margin}], y in [{-margin}, {height + margin}])")


def _check_polygons(polygons, height: int, width: int) -> list[list[float]]:
    """Validate COCO polygons for a height x width image and return them as lists of floats."""
    if not isinstance(polygons, (list, tuple)):
        raise CocoFormatError(f"polygons must be a list of coordinate lists; got {type(polygons).__name__}")
    checked = []
    for index, polygon in enumerate(polygons):
        if isinstance(polygon, numbers.Real):
            raise CocoFormatError("polygons must be a list of coordinate lists [[x1, y1, x2, y2, "
                                  "...], ...]; got a flat list of numbers")
        try:
            coords = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CocoFormatError(f"polygon {index} has non-numeric coordinates: {exc}") from exc
        if coords.ndim != 1 or coords.size < 6 or coords.size % 2:
            raise CocoFormatError(f"polygon {index} has {coords.size} coordinates; expected an even "
                                  f"number >= 6 (x1, y1, x2, y2, x3, y3, ...)")
        if not np.isfinite(coords).all():
            raise CocoFormatError(f"polygon {index} has non-finite coordinates")
        outside = polygon_outside_problem(coords, height, width)
        if outside:
            raise CocoFormatError(f"polygon {index} {outside}")
        checked.append(coords.tolist())
    return checked


def polygons_rle(polygons, height: int, width: int) -> dict:
    """Rasterise validated polygons (unioned) to pycocotools' RLE."""
    checked = _check_polygons(polygons, height, width)
    if not checked:
        return pycoco_from_counts(np.array([height * width]), height, width)
    return mask_utils.merge(mask_utils.frPyObjects(checked, height, width))


def segmentation_rle(segmentation, height: int, width: int, validated: bool = False) -> dict:
    """Any COCO segmentation as pycocotools' RLE (bytes counts), validated.

    ``validated``: the segmentation comes from a validated CocoDataset, so a compressed
    RLE is handed over as it is (its counts were checked when the dataset was loaded;
    an RLE size written as [width, height] is read as [height, width], as validation does).
    """
    if validated and isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if isinstance(segmentation, dict):
        return pycoco_rle(segmentation, height, width)
    if isinstance(segmentation, (list, tuple)):
        return polygons_rle(segmentation, height, width)
    raise CocoFormatError(f"segmentation must be a list of polygons or an RLE dict with 'size' and "
                          f"'counts'; got {type(segmentation).__name__}")


def polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (unioned) with pycocotools.

    Raises:
        CocoFormatError: a polygon has an odd number or fewer than 6 coordinates, or
            non-numeric / non-finite values.
    """
    height, width = check_size(height, width)
    return decode_pycoco(polygons_rle(polygons, height, width))


def segmentation_to_rle(segmentation, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygons or RLE) as compressed RLE with str counts.

    This is the raster pycocotools evaluates (``COCO.annToRLE``); its ``rle_area`` and
    ``rle_bbox`` are the annotation's ``area`` and ``bbox``.

    Raises:
        RLEError / CocoFormatError: as ``segmentation_to_mask``.
    """
    height, width = check_size(height, width)
    return json_rle(segmentation_rle(segmentation, height, width))


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO ``segmentation``: polygons, compressed RLE or uncompressed RLE.

    Raises:
        RLEError: an RLE is malformed or its size differs from (height, width).
        CocoFormatError: polygons are malformed or the value is neither form.
    """
    height, width = check_size(height, width)
    if isinstance(segmentation, dict):
        return coco_rle_decode(segmentation, height, width)
    return decode_pycoco(segmentation_rle(segmentation, height, width))


__all__ = [
    "polygon_outside_problem",
    "polygons_rle",
    "segmentation_rle",
    "polygons_to_mask",
    "segmentation_to_rle",
    "segmentation_to_mask",
]
