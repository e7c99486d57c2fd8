"""Issue 17 class 5: values that pycocotools or JSON treat differently from validate.

Inputs are cut from V7 Labs' real COCO export (../shared/data/v7-coco): a few images with
their polygon annotations and the two uncompressed RLE (size stored ``[width, height]``).
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from helpers import shared
from pycocotools import mask as mask_utils

from cococxr.coco import CocoDataset, validate_dataset
from cococxr.errors import CocoFormatError


@pytest.fixture(scope="module")
def v7_cut() -> dict:
    """Three polygon images and the images of the two RLE annotations, from the real export."""
    data = json.loads((shared("v7-coco") / "annotations.json").read_text(encoding="utf-8"))
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    keep = {a["image_id"] for a in crowd} | {img["id"] for img in data["images"][:3]}
    return {"images": [i for i in data["images"] if i["id"] in keep], "categories": data["categories"],
            "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}


def _codes(data) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for issue in validate_dataset(data):
        if issue.severity == "error":
            found.setdefault(issue.code, []).append(f"{issue.path}: {issue.message}")
    return found


def test_the_cut_is_valid(v7_cut):
    assert _codes(v7_cut) == {}
    assert {i.code for i in validate_dataset(v7_cut)} >= {"rle_size_swapped"}


@pytest.mark.parametrize("value", ["0", "1", True, False, 0.0, 2, None])
def test_iscrowd_must_be_the_integer_0_or_1(v7_cut, value):
    data = copy.deepcopy(v7_cut)
    data["annotations"][0]["iscrowd"] = value
    errors = _codes(data)
    assert list(errors) == ["bad_iscrowd"]
    assert errors["bad_iscrowd"][0].startswith("annotations[0].iscrowd: annotation")
    assert repr(value) in errors["bad_iscrowd"][0]


@pytest.mark.parametrize("field, value, code", [
    ("id", 5.0, "bad_id"), ("id", True, "bad_id"), ("id", "5", "bad_id"),
    ("image_id", "IMG", "unknown_image"), ("category_id", 1.0, "unknown_category"),
    ("category_id", True, "unknown_category"), ("area", "12", "bad_area"), ("area", True, "bad_area"),
    ("bbox", [0, 0, "4", 4], "bad_bbox"), ("bbox", [0, 0, True, 4], "bad_bbox"),
])
def test_annotation_fields_have_exact_types(v7_cut, field, value, code):
    data = copy.deepcopy(v7_cut)
    data["annotations"][0][field] = value
    errors = _codes(data)
    assert code in errors, errors
    if field in ("image_id", "category_id"):
        assert "ids are integers" in errors[code][0]


def test_string_image_id_names_its_type(v7_cut):
    data = copy.deepcopy(v7_cut)
    data["annotations"][0]["image_id"] = str(data["annotations"][0]["image_id"])
    assert "this is a str" in _codes(data)["unknown_image"][0]


@pytest.mark.parametrize("field, value", [("height", 512.0), ("width", True), ("height", "512"), ("id", 1.5)])
def test_image_fields_have_exact_types(v7_cut, field, value):
    data = copy.deepcopy(v7_cut)
    data["images"][0][field] = value
    assert set(_codes(data)) & {"bad_image_size", "bad_id"}


def _duplicate_top_level(text: str) -> str:
    """The file with a second, empty ``"annotations"`` list at the end of the top level."""
    return text.rstrip().removesuffix("}") + ', "annotations": []}'


def test_duplicate_top_level_key_is_an_error_naming_key_and_file(v7_cut, tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(_duplicate_top_level(json.dumps(v7_cut)), encoding="utf-8")
    with pytest.raises(CocoFormatError) as exc:
        CocoDataset(path)
    message = str(exc.value)
    assert str(path) in message and "'annotations'" in message and "top-level object" in message


def test_duplicate_key_inside_a_record_names_the_record(v7_cut, tmp_path):
    text = json.dumps(v7_cut)
    first = v7_cut["annotations"][0]["id"]
    text = text.replace(f'"id": {first},', f'"id": {first}, "category_id": 1,', 1)
    path = tmp_path / "dup.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CocoFormatError, match=rf"'category_id' appears more than once in the object with id {first}"):
        CocoDataset(path)


def test_no_duplicate_keys_loads_as_before(v7_cut, tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(v7_cut), encoding="utf-8")
    assert len(CocoDataset(path).anns) == len(v7_cut["annotations"])


def test_deep_nesting_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(CocoFormatError, match="nested too deeply"):
        CocoDataset(path)


def _rle_annotation(data: dict) -> tuple[dict, dict]:
    ann = next(a for a in data["annotations"] if a["iscrowd"])
    return ann, next(i for i in data["images"] if i["id"] == ann["image_id"])


def test_v7_swapped_size_confirmed_by_bbox_stays_a_warning(v7_cut):
    data = copy.deepcopy(v7_cut)
    ann, img = _rle_annotation(data)
    assert img["height"] != img["width"] and ann["segmentation"]["size"] == [img["width"], img["height"]]
    codes = {(i.severity, i.code) for i in validate_dataset(data) if i.ann_id == ann["id"]}
    assert ("warning", "rle_size_swapped") in codes and not any(s == "error" for s, _ in codes)


def test_swapped_size_of_a_transposed_mask_is_an_error(v7_cut):
    """An RLE of the mask made at [width, height] (a transposed array) decodes scrambled."""
    data = copy.deepcopy(v7_cut)
    ann, img = _rle_annotation(data)
    h, w = img["height"], img["width"]
    truth = np.zeros((h, w), np.uint8)
    truth[h // 4:h // 2, w // 8:w // 3] = 1
    x, y, bw, bh = (int(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(truth))))
    transposed = mask_utils.encode(np.asfortranarray(truth.T.copy()))
    ann["segmentation"] = {"size": [w, h], "counts": transposed["counts"].decode("ascii")}
    ann["bbox"], ann["area"] = [x, y, bw, bh], int(truth.sum())
    errors = _codes(data)
    assert "rle_size_mismatch" in errors
    assert "swapped" in errors["rle_size_mismatch"][0] and "scrambled" in errors["rle_size_mismatch"][0]


def test_swapped_size_without_bbox_is_an_error(v7_cut):
    data = copy.deepcopy(v7_cut)
    ann, _ = _rle_annotation(data)
    del ann["bbox"]
    assert "rle_size_mismatch" in _codes(data)
