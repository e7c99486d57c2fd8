"""cococxr.masks: annotations <-> label maps, channels and per-class/per-instance RLE."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cococxr.errors import CocoFormatError, ConfigError, ConversionError, RLEError
from cococxr.masks import (
    annotation_to_mask,
    annotations_to_channels,
    annotations_to_label_map,
    label_map_to_annotations,
    mask_to_annotations,
    mask_to_polygons,
)
from cococxr.preprocess import resize_mask
from cococxr.rle import coco_rle_encode
from helpers import FAST
from helpers import masks as rle_masks
from helpers import shapes as rle_shapes

shapes = rle_shapes(30, 40)


def masks():
    """uint8 0/1 masks up to 30x30 (and 1x40, 40x1): see helpers.masks."""
    return rle_masks(30, 40)


def pycoco_rle(segmentation, h: int, w: int) -> dict:
    """pycocotools' RLE of a segmentation, as COCO.annToRLE makes it."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
    return {"size": segmentation["size"], "counts": segmentation["counts"].encode()}


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (outer contours drawn solid)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out


def assert_geometry_matches_pycocotools(ann: dict, h: int, w: int) -> None:
    """area/bbox equal pycocotools' of the segmentation; standard keys present."""
    rle = pycoco_rle(ann["segmentation"], h, w)
    assert ann["area"] == int(mask_utils.area(rle)) and type(ann["area"]) is int
    assert ann["bbox"] == mask_utils.toBbox(rle).tolist()
    assert ann["iscrowd"] == 0 and "id" not in ann


# ------------------------------------------------------------ masks -> annotations
@FAST
@given(masks())
def test_semantic_mask_round_trips_through_one_rle(mask):
    anns = mask_to_annotations(mask, category_id=3, image_id=7)
    assert len(anns) == (1 if mask.any() else 0)
    for ann in anns:
        assert ann["category_id"] == 3 and ann["image_id"] == 7
        assert isinstance(ann["segmentation"]["counts"], str)
        assert_geometry_matches_pycocotools(ann, *mask.shape)
    channels = annotations_to_channels(anns, *mask.shape, category_ids=[3])
    np.testing.assert_array_equal(channels[..., 0], mask)


@FAST
@given(masks())
def test_instances_are_the_8_connected_components(mask):
    anns = mask_to_annotations(mask, 1, 1, instances=True)
    n_labels, labels = cv2.connectedComponents(mask, connectivity=8)
    assert len(anns) == n_labels - 1
    for label, ann in enumerate(anns, start=1):
        component = (labels == label).astype(np.uint8)
        assert ann["segmentation"] == coco_rle_encode(component)  # canonical, as pycocotools
        assert_geometry_matches_pycocotools(ann, *mask.shape)
    np.testing.assert_array_equal(annotations_to_channels(anns, *mask.shape, [1])[..., 0], mask)


@FAST
@given(masks(), st.booleans())
def test_polygons_reproduce_the_mask_up_to_holes(mask, instances):
    anns = mask_to_annotations(mask, 2, 5, instances=instances, polygons=True)
    n_labels, labels = cv2.connectedComponents(mask, connectivity=8)
    references = ([(labels == k).astype(np.uint8) for k in range(1, n_labels)] if instances
                  else [mask] * int(mask.any()))
    assert len(anns) == len(references)
    for ann, reference in zip(anns, references):
        raster = annotation_to_mask(ann, *mask.shape)
        assert_geometry_matches_pycocotools(ann, *mask.shape)
        assert all(len(p) >= 8 and len(p) % 2 == 0 for p in ann["segmentation"])
        np.testing.assert_array_equal(raster, filled(reference))
        iou = (raster & reference).sum() / (raster | reference).sum()
        assert ann["polygon_iou"] == pytest.approx(iou)


def test_polygon_iou_reports_the_hole():
    mask = np.zeros((10, 10), np.uint8)
    mask[1:9, 1:9] = 1
    mask[4:6, 4:6] = 0  # a 2x2 hole: 60 of 64 pixels
    polygons, iou = mask_to_polygons(mask)
    assert polygons == [[1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 1.0]]
    assert iou == pytest.approx(60 / 64)
    [ann] = mask_to_annotations(mask, 1, 1, polygons=True)
    assert ann["polygon_iou"] == pytest.approx(60 / 64) and ann["area"] == 64


def test_hole_free_polygons_are_exact():
    mask = np.zeros((40, 50), np.uint8)
    cv2.ellipse(mask, (20, 18), (15, 9), 30, 0, 360, 1, -1)
    mask[0, 0] = mask[39, 49] = 1  # single pixels in the corners
    polygons, iou = mask_to_polygons(mask)
    assert iou == 1.0 and len(polygons) == 3
    assert mask_to_polygons(np.zeros((3, 3), np.uint8)) == ([], 1.0)


def test_diagonal_pixels_are_one_instance():
    mask = np.eye(4, dtype=np.uint8)
    assert len(mask_to_annotations(mask, 1, 1, instances=True)) == 1
    assert len(mask_to_annotations(mask, 1, 1, instances=True, polygons=True)) == 1


def test_pycocotools_loads_what_we_write():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:9] = 1
    mask[12:18, 20:28] = 1
    anns = (mask_to_annotations(mask, 1, 1, instances=True)
            + mask_to_annotations(mask, 2, 1, polygons=True))
    for i, ann in enumerate(anns, start=1):
        ann["id"] = i
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": 20, "width": 30, "file_name": "a.png"}],
                    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                    "annotations": anns}
    coco.createIndex()
    for ann in anns:
        np.testing.assert_array_equal(coco.annToMask(ann), annotation_to_mask(ann, 20, 30))
    assert sum(coco.annToMask(a).sum() for a in coco.loadAnns(coco.getAnnIds(catIds=[1]))) == 84


# ------------------------------------------------------------ annotations -> masks
def rect_ann(category_id: int, y0: int, y1: int, x0: int, x1: int, shape=(6, 8)) -> dict:
    """An RLE annotation covering a rectangle."""
    mask = np.zeros(shape, np.uint8)
    mask[y0:y1, x0:x1] = 1
    return {"id": category_id * 10 + y0, "category_id": category_id,
            "segmentation": coco_rle_encode(mask)}


def test_channels_follow_the_given_class_order():
    anns = [rect_ann(5, 0, 2, 0, 2), rect_ann(9, 1, 4, 1, 4), rect_ann(5, 4, 6, 6, 8),
            rect_ann(7, 0, 6, 0, 8),  # not requested: skipped
            {"id": 99, "image_id": 1, "category_id": 5, "iscrowd": 0, "area": 0}]  # a label
    channels = annotations_to_channels(anns, 6, 8, category_ids=[9, 5])
    assert channels.shape == (6, 8, 2) and channels.dtype == np.uint8
    assert channels.flags.c_contiguous
    assert channels[..., 0].sum() == 9 and channels[..., 1].sum() == 8
    assert channels[1, 1].tolist() == [1, 1]  # overlap kept in both channels
    assert annotations_to_channels(anns, 6, 8, category_ids=[]).shape == (6, 8, 0)


def test_label_map_later_class_wins():
    anns = [rect_ann(5, 0, 2, 0, 2), rect_ann(9, 1, 4, 1, 4)]
    label_map = annotations_to_label_map(anns, 6, 8, category_ids=[5, 9])
    assert label_map.dtype == np.uint8
    assert label_map[1, 1] == 2 and label_map[0, 0] == 1 and label_map[5, 7] == 0
    assert annotations_to_label_map(anns, 6, 8, category_ids=[9, 5])[1, 1] == 2  # 5 now wins
    assert annotations_to_label_map(anns, 6, 8, list(range(300))).dtype == np.uint16


@FAST
@given(hnp.arrays(np.uint8, shapes, elements=st.integers(0, 3)), st.booleans(),
       st.tuples(st.integers(1, 70), st.integers(1, 70)))
def test_rasterising_at_a_size_equals_resizing_the_full_mask(label_map, instances, size):
    """The Sequence's fast path (decode straight to ``size``) is resize_mask, exactly."""
    anns = label_map_to_annotations(label_map, {1: 11, 2: 12, 3: 13}, image_id=1, instances=instances)
    h, w = label_map.shape
    ids = [13, 11, 12]
    full = annotations_to_channels(anns, h, w, ids)
    np.testing.assert_array_equal(annotations_to_channels(anns, h, w, ids, size=size), resize_mask(full, size))
    np.testing.assert_array_equal(annotations_to_channels(anns, h, w, ids, validated=True), full)
    np.testing.assert_array_equal(annotations_to_label_map(anns, h, w, ids, size=size),
                                  resize_mask(annotations_to_label_map(anns, h, w, ids), size))


def test_duplicate_category_ids_are_rejected():
    with pytest.raises(ConfigError, match="duplicates"):
        annotations_to_channels([], 2, 2, category_ids=[1, 1])


def test_annotation_errors_name_the_annotation():
    label = {"id": 4, "image_id": 1, "category_id": 2}
    with pytest.raises(CocoFormatError, match="annotation 4 has no segmentation"):
        annotation_to_mask(label, 3, 3)
    bad = {"id": 12, "category_id": 1, "segmentation": coco_rle_encode(np.ones((3, 3)))}
    with pytest.raises(RLEError, match=r"annotation 12: COCO RLE size \[3, 3\] differs"):
        annotation_to_mask(bad, 4, 3)
    with pytest.raises(RLEError, match="annotation 12"):
        annotations_to_channels([bad], 4, 3, [1])


@pytest.mark.timeout(10)
def test_overlong_compressed_rle_is_rejected_before_pycocotools_merges_it():
    """pycocotools.mask.merge never returns on counts that overrun the image."""
    good = {"id": 1, "category_id": 1, "segmentation": coco_rle_encode(np.ones((2, 3)))}
    bad = {"id": 2, "category_id": 1, "segmentation": {"size": [2, 3], "counts": "0:0"}}
    with pytest.raises(RLEError, match="annotation 2: compressed COCO RLE counts sum to 10"):
        annotations_to_channels([good, bad], 2, 3, [1])


def test_polygon_and_uncompressed_annotations_rasterise():
    polygon = {"id": 1, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]}
    uncompressed = {"id": 2, "category_id": 2,
                    "segmentation": {"size": [5, 6], "counts": [0, 5, 25]}}
    channels = annotations_to_channels([polygon, uncompressed], 5, 6, [1, 2])
    assert channels[..., 0].sum() == 6 and channels[..., 1][:, 0].tolist() == [1] * 5


# ------------------------------------------------------------------ label maps
@FAST
@given(hnp.arrays(np.uint8, shapes, elements=st.integers(0, 3)), st.booleans())
def test_label_map_round_trip(label_map, instances):
    mapping = {1: 11, 2: 12, 3: 13}
    anns = label_map_to_annotations(label_map, mapping, image_id=1, instances=instances)
    for ann in anns:
        assert_geometry_matches_pycocotools(ann, *label_map.shape)
    rebuilt = annotations_to_label_map(anns, *label_map.shape, category_ids=[11, 12, 13])
    np.testing.assert_array_equal(rebuilt, label_map)


def test_unmapped_label_values_are_reported():
    with pytest.raises(ConversionError, match=r"values \[7\]"):
        label_map_to_annotations(np.array([[0, 1], [7, 1]]), {1: 3}, image_id="x")
    assert label_map_to_annotations(np.zeros((2, 2)), {1: 3}, image_id=1) == []
