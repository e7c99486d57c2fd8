"""Annotations <-> masks.

Rasterise COCO annotations into a label map or one-hot channels for an explicit, ordered
list of category ids, and turn masks back into annotations: one lossless RLE per
(image, class) for semantic masks, one per 8-connected component for instance masks, or
polygons on request (with the loss they cause measured as ``"polygon_iou"``).

Image-level label annotations (no ``segmentation``) have no pixels: the rasterisers skip
them. Every annotation made here has ``area`` and ``bbox`` equal to
``pycocotools.mask.area`` / ``toBbox`` of its segmentation, ``iscrowd: 0`` and no ``id``
(the caller numbers them).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cococxr.errors import CococxrError, CocoFormatError, ConfigError, ConversionError
from cococxr.rle.arrays import binary_mask, check_size, value_runs
from cococxr.rle.coco_rle import coco_rle_encode, decode_pycoco, rle_area, rle_bbox
from cococxr.rle.runs import runs_to_coco
from cococxr.rle.segmentation import polygons_to_mask, segmentation_rle, segmentation_to_mask, segmentation_to_rle


# ------------------------------------------------------------ annotations -> masks
@contextlib.contextmanager
def _naming(ann: Mapping) -> Iterator[None]:
    """Prefix cococxr errors raised inside the block with the annotation's id."""
    try:
        yield
    except CococxrError as exc:
        raise type(exc)(f"annotation {ann.get('id')}: {exc}") from exc


def annotation_to_mask(ann: Mapping, height: int, width: int) -> np.ndarray:
    """Rasterise one annotation's ``segmentation`` (polygons or RLE).

    Returns:
        uint8 0/1 array (height, width).

    Raises:
        CocoFormatError: the annotation has no segmentation (an image-level label) or
            malformed polygons; RLEError: a malformed RLE or one of another size. The
            message starts with the annotation id.
    """
    segmentation = ann.get("segmentation")
    if segmentation is None:
        raise CocoFormatError(f"annotation {ann.get('id')} has no segmentation (an image-level "
                              f"label): there is nothing to rasterise")
    with _naming(ann):
        return segmentation_to_mask(segmentation, height, width)


def _union(anns: list[Mapping], height: int, width: int, size: tuple[int, int] | None,
           validated: bool) -> np.ndarray:
    """Union of the annotations' masks: their RLEs merged by pycocotools, decoded once."""
    rles = []
    for ann in anns:
        with _naming(ann):
            rles.append(segmentation_rle(ann["segmentation"], height, width, validated))
    return decode_pycoco(rles[0] if len(rles) == 1 else mask_utils.merge(rles), size)


def _class_planes(anns: Iterable[Mapping], height: int, width: int, category_ids: Sequence[int],
                  size: Sequence[int] | None, validated: bool) -> np.ndarray:
    """(K, h, w) uint8: plane k is the union of the masks of ``category_ids[k]``, at ``size``."""
    index = {cat_id: k for k, cat_id in enumerate(category_ids)}
    if len(index) != len(category_ids):
        raise ConfigError(f"category_ids has duplicates: {list(category_ids)}")
    height, width = check_size(height, width)
    size = None if size is None else check_size(*size)
    groups = [[] for _ in category_ids]
    for ann in anns:
        k = index.get(ann.get("category_id"))
        if k is not None and ann.get("segmentation") is not None:
            groups[k].append(ann)
    planes = np.zeros((len(groups), *(size or (height, width))), np.uint8)
    for k, group in enumerate(groups):
        if group:
            planes[k] = _union(group, height, width, size, validated)
    return planes


def annotations_to_channels(anns: Iterable[Mapping], height: int, width: int, category_ids: Sequence[int],
                            size: Sequence[int] | None = None, validated: bool = False) -> np.ndarray:
    """One-hot (multi-label) masks: channel k is the union of ``category_ids[k]``'s masks.

    Annotations of other categories and label annotations (no segmentation) are skipped.

    Args:
        anns: the image's annotations.
        height, width: the image size (every RLE must have it).
        category_ids: the category of each channel, in order.
        size: optional output ``(height, width)``: the same as :func:`resize_mask` of
            the full-size result, computed without the full-size copies.
        validated: the annotations belong to a validated ``CocoDataset``
            (``dataset.validated``): compressed RLEs are not checked again.

    Returns:
        uint8 0/1 array (height, width, len(category_ids)), or ``(*size, K)``.
    """
    planes = _class_planes(anns, height, width, category_ids, size, validated)
    return np.ascontiguousarray(np.moveaxis(planes, 0, -1))


def annotations_to_label_map(anns: Iterable[Mapping], height: int, width: int, category_ids: Sequence[int],
                             size: Sequence[int] | None = None, validated: bool = False) -> np.ndarray:
    """Label map: value k+1 where ``category_ids[k]`` is, 0 for background.

    Where classes overlap, the one later in ``category_ids`` wins. Annotations of other
    categories and label annotations (no segmentation) are skipped. ``size`` and
    ``validated`` are as in :func:`annotations_to_channels`.

    Returns:
        (height, width) (or ``size``) array, uint8 for up to 255 classes, else uint16.
    """
    if len(category_ids) > np.iinfo(np.uint16).max:
        raise ConfigError(f"a label map holds at most 65535 classes; got {len(category_ids)}")
    planes = _class_planes(anns, height, width, category_ids, size, validated)
    label_map = np.zeros(planes.shape[1:], np.uint8 if len(category_ids) < 256 else np.uint16)
    for k, plane in enumerate(planes):
        label_map[plane != 0] = k + 1
    return label_map


# ------------------------------------------------------------ masks -> annotations
def _annotation(segmentation, rle: dict, category_id: int, image_id) -> dict:
    """Annotation dict with area and bbox taken from ``rle`` (the segmentation's raster)."""
    return {"image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": rle_area(rle), "bbox": rle_bbox(rle), "iscrowd": 0}


def mask_components(mask) -> tuple[np.ndarray, list[dict]]:
    """The 8-connected components of a mask, as the ``instances`` converters split them.

    Args:
        mask: 2-D array; non-zero pixels are foreground.

    Returns:
        ``(labels, rles)``: an int32 label image (0 background, components 1..n) and the
        COCO RLE of each component, in label order (one vectorised pass over the pixels).
    """
    binary = binary_mask(mask)
    height, width = binary.shape
    n_labels, labels = cv2.connectedComponents(binary, connectivity=8)
    starts, ends, values = value_runs(cv2.transpose(labels).ravel())  # column-major
    keep = values > 0
    starts, ends, values = starts[keep], ends[keep], values[keep]
    order = np.argsort(values, kind="stable")  # group by component, keep pixel order
    groups = np.split(order, np.cumsum(np.bincount(values, minlength=n_labels)[1:])[:-1])
    return labels, [runs_to_coco(starts[g], ends[g] - starts[g], height, width) for g in groups]


def _component_crops(binary: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """``(crop, x0, y0)`` for each 8-connected component, cropped to its bounding box."""
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    crops = []
    for label in range(1, n_labels):
        x0, y0, w, h = (int(v) for v in stats[label, :4])
        crops.append(((labels[y0:y0 + h, x0:x0 + w] == label).view(np.uint8), x0, y0))
    return crops


def _polygon_annotation(crop: np.ndarray, x0: int, y0: int, shape: tuple[int, int],
                        category_id: int, image_id) -> dict:
    """Polygon annotation of a (cropped) mask, with its ``polygon_iou``."""
    polygons, iou = mask_to_polygons(crop)
    polygons = [(np.asarray(p).reshape(-1, 2) + (x0, y0)).ravel().tolist() for p in polygons]
    ann = _annotation(polygons, segmentation_to_rle(polygons, *shape), category_id, image_id)
    ann["polygon_iou"] = iou
    return ann


def mask_to_annotations(mask, category_id: int, image_id, *, instances: bool = False,
                        polygons: bool = False) -> list[dict]:
    """Annotations for the foreground of one class's mask.

    Args:
        mask: 2-D array; non-zero pixels are foreground.
        category_id: the annotations' ``category_id``.
        image_id: the annotations' ``image_id``.
        instances: one annotation per 8-connected component instead of one for the
            whole mask.
        polygons: polygon segmentations instead of (lossless) compressed RLE; each
            annotation then gets ``"polygon_iou"``, the raster IoU of its polygons with
            the mask (below 1 where the mask has holes, which polygons cannot express).

    Returns:
        Annotations without ``id``; ``[]`` for an empty mask.
    """
    binary = binary_mask(mask)
    if not binary.any():
        return []
    if polygons:
        pieces = _component_crops(binary) if instances else [(binary, 0, 0)]
        return [_polygon_annotation(crop, x0, y0, binary.shape, category_id, image_id)
                for crop, x0, y0 in pieces]
    rles = mask_components(binary)[1] if instances else [coco_rle_encode(binary)]
    return [_annotation(rle, rle, category_id, image_id) for rle in rles]


def label_map_to_annotations(label_map, value_to_category_id: Mapping[int, int], image_id, *,
                             instances: bool = False) -> list[dict]:
    """Annotations for every class of a label map, as ``mask_to_annotations`` makes them.

    Args:
        label_map: 2-D integer array.
        value_to_category_id: pixel value -> category id; unmapped 0 is background.
        image_id: the annotations' ``image_id``.
        instances: one annotation per 8-connected component of each class.

    Raises:
        ConversionError: the label map has non-zero values missing from the mapping.
    """
    label_map = np.asarray(label_map)
    unmapped = sorted(set(np.unique(label_map).tolist()) - set(value_to_category_id) - {0})
    if unmapped:
        raise ConversionError(f"label map of image {image_id} has values {unmapped[:10]} that "
                              f"value_to_category_id {dict(value_to_category_id)} does not map")
    anns = []
    for value, category_id in value_to_category_id.items():
        anns += mask_to_annotations(label_map == value, category_id, image_id, instances=instances)
    return anns


def _edge_polygon(contour: np.ndarray) -> list[float]:
    """Map a contour of the 2x-upscaled mask to pixel-edge coordinates of the mask.

    Upscaled pixel u lies in the first or second half of pixel u // 2; (u + 1) // 2 is the
    pixel edge on the outside, so the polygon runs along pixel borders and pycocotools
    rasterises it back to exactly the pixels it encloses.
    """
    points = (contour.reshape(-1, 2) + 1) // 2
    points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    return points.astype(np.float64).ravel().tolist()


def mask_to_polygons(mask) -> tuple[list[list[float]], float]:
    """COCO polygons of a mask's outer boundaries, and how much they lose.

    Polygons follow pixel borders (cv2.findContours with RETR_EXTERNAL on the 2x-upscaled
    mask), so a mask without holes is reproduced exactly. Holes cannot be expressed
    by COCO polygons (they are unioned) and are filled.

    Returns:
        ``(polygons, iou)``: ``[[x1, y1, x2, y2, ...], ...]`` and the raster IoU of the
        polygons with the mask (1.0 for an empty mask).
    """
    binary = binary_mask(mask)
    upscaled = np.repeat(np.repeat(binary, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(upscaled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [_edge_polygon(c) for c in contours]
    raster = polygons_to_mask(polygons, *binary.shape)
    union = np.count_nonzero(raster | binary)
    return polygons, (np.count_nonzero(raster & binary) / union if union else 1.0)


__all__ = [
    "annotation_to_mask",
    "annotations_to_channels",
    "annotations_to_label_map",
    "mask_to_annotations",
    "mask_components",
    "label_map_to_annotations",
    "mask_to_polygons",
]
