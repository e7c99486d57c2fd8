"""Predicates and small readers of COCO records shared by the coco modules.

Annotation kinds (see docs/internals.md): *geometry* annotations carry ``segmentation``
(and/or ``bbox``); *label* annotations carry neither and mark an image-level finding.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

#: Most pixels an image may have: pycocotools stores RLE run lengths as 32-bit unsigned ints.
MAX_PIXELS = 2**32 - 1


def is_label_annotation(ann: Mapping) -> bool:
    """Return True for an image-level label (no ``segmentation`` and no ``bbox``)."""
    return "segmentation" not in ann and "bbox" not in ann


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_missing(value: Any) -> bool:
    """True for None, an empty string or NaN (a missing group key)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def short(value: Any, limit: int = 80) -> str:
    """repr() cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def other_coco_kind(data: Mapping) -> str | None:
    """Name a COCO file of another task (panoptic, captions) that cococxr does not read, or None."""
    anns = data.get("annotations")
    sample = [a for a in anns[:20] if isinstance(a, Mapping)] if isinstance(anns, list) else []
    if any("segments_info" in a for a in sample):
        return ("a COCO panoptic file (annotations with 'segments_info', masks in separate PNGs), not a COCO "
                "instance-segmentation file; convert it first (panopticapi's panoptic2detection_coco_format)")
    if any("caption" in a and "category_id" not in a for a in sample):
        return ("a COCO caption file (annotations with 'caption' text, no categories or masks), not a COCO "
                "instance-segmentation file; it has nothing cococxr can read")
    return None


def image_size(img: dict | None) -> tuple[int, int] | None:
    """Return (height, width) of a valid image record, else None."""
    if img is None:
        return None
    height, width = img.get("height"), img.get("width")
    if is_int(height) and is_int(width) and height > 0 and width > 0 and height * width <= MAX_PIXELS:
        return height, width
    return None


__all__ = ["MAX_PIXELS", "other_coco_kind", "is_label_annotation", "is_int", "is_number", "is_missing", "short", "image_size"]
