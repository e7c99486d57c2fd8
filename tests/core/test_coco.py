"""Tests of cococxr.coco: loading, validation rules, index, queries, merge, split, write, builder."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cococxr.coco import (STRATIFY_BY_LABELS, CocoBuilder, CocoDataset, ValidationIssue, is_label_annotation, merge,
                          validate_dataset)
from cococxr.errors import CocoFormatError, ConfigError, ConversionError, UnsafePathError
from cococxr.rle import decode_counts

H, W = 20, 30


def rle_of(mask: np.ndarray) -> dict:
    """Compressed COCO RLE with str counts, by pycocotools."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO uncompressed RLE counts (column-major runs, starting with background)."""
    flat = mask.flatten(order="F")
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


def box_mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[5:10, 2:8] = 1
    return mask


def base() -> dict:
    """A small valid dataset: a polygon, an RLE and a label annotation."""
    return {
        "info": {"description": "test"},
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W, "patient_id": "p1"},
            {"id": 2, "file_name": "sub/b.png", "height": H, "width": W, "patient_id": "p2"},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 10, 0, 10, 8, 0, 8]],
             "area": 80, "bbox": [0, 0, 10, 8], "iscrowd": 0},
            {"id": 11, "image_id": 2, "category_id": 1, "segmentation": rle_of(box_mask()),
             "area": 30, "bbox": [2.0, 5.0, 6.0, 5.0], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 2, "iscrowd": 0, "area": 0},
        ],
        "categories": [
            {"id": 1, "name": "lung", "supercategory": "anatomy"},
            {"id": 2, "name": "COVID", "supercategory": "finding"},
        ],
    }


def test_base_is_clean():
    assert validate_dataset(base()) == []
    assert CocoDataset(base()).issues == []


# --------------------------------------------------------------------- loading
def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(CocoFormatError, match="nope.json"):
        CocoDataset(path)


def test_truncated_json_names_file(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(base())[:-40])
    with pytest.raises(CocoFormatError, match=r"cut\.json.*not valid JSON.*truncated"):
        CocoDataset(path)


@pytest.mark.parametrize("data, match", [
    ([1, 2], "expected a JSON object"),
    ({"annotations": [], "categories": []}, "missing the 'images'"),
    ({"images": {}, "categories": []}, "'images' must be a list"),
])
def test_bad_top_level_names_file(tmp_path, data, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    for validate in (True, False):
        with pytest.raises(CocoFormatError, match=match) as info:
            CocoDataset(path, validate=validate)
        assert "bad.json" in str(info.value)


def test_not_utf8_names_file(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"images": "\xe9"}')
    with pytest.raises(CocoFormatError, match="latin.json.*UTF-8"):
        CocoDataset(path)


def test_validate_false_still_refuses_unindexable_records():
    data = base()
    data["annotations"][0] = "oops"
    with pytest.raises(CocoFormatError, match=r"annotations\[0\]"):
        CocoDataset(data, validate=False)


# ------------------------------------------------------------ validation rules
def _set(path: str, value):
    """Return a mutation setting data[...] at a dotted/indexed path like 'images.0.width'."""
    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _delete(path: str):
    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]
    return mutate


def _category_zero(data):
    data["categories"][0]["id"] = 0
    data["annotations"][0]["category_id"] = data["annotations"][1]["category_id"] = 0


def _v7_swapped_rle(data):
    """V7 Darwin style: uncompressed RLE with size [width, height]."""
    data["annotations"][1]["segmentation"] = {"counts": uncompressed_counts(box_mask()), "size": [W, H]}
    data["annotations"][1]["iscrowd"] = 1


# (mutation, severity, code, path, texts the message must contain)
RULES = [
    (_set("images.1.id", 1), "error", "duplicate_image_id", "images[1].id", ["image 1", "images[0]"]),
    (_set("annotations.1.id", 10), "error", "duplicate_annotation_id", "annotations[1].id",
     ["annotation 10", "annotations[0]"]),
    (_set("categories.1.id", 1), "error", "duplicate_category_id", "categories[1].id",
     ["category 1", "categories[0]"]),
    (_set("categories.1.name", "lung"), "error", "duplicate_category_name", "categories[1].name",
     ["'lung'", "categories[0]"]),
    (_set("annotations.0.image_id", 99), "error", "unknown_image", "annotations[0].image_id",
     ["annotation 10", "99"]),
    (_set("annotations.0.category_id", 7), "error", "unknown_category", "annotations[0].category_id",
     ["annotation 10", "7"]),
    (_set("annotations.0.segmentation", [[0, 0, 10, 0, 10]]), "error", "bad_polygon",
     "annotations[0].segmentation[0]", ["annotation 10 (image 1)", "odd"]),
    (_set("annotations.0.segmentation", [[0, 0, 10, 0, 10, 8], [0, 0, 5, 5]]), "error", "bad_polygon",
     "annotations[0].segmentation[1]", ["annotation 10", "at least 3"]),
    (_set("annotations.0.segmentation", [[0, 0, 10, float("nan"), 10, 8]]), "error", "bad_polygon",
     "annotations[0].segmentation[0]", ["annotation 10", "finite"]),
    (_set("annotations.0.segmentation", []), "warning", "empty_segmentation", "annotations[0].segmentation",
     ["annotation 10", "carries no mask"]),
    (_set("annotations.0.segmentation", "[[0, 0, 10, 0, 10, 8]]"), "error", "bad_segmentation",
     "annotations[0].segmentation", ["annotation 10", "str"]),
    (_set("annotations.1.segmentation.size", [H + 1, W]), "error", "rle_size_mismatch",
     "annotations[1].segmentation.size", ["annotation 11 (image 2)", f"[{H}, {W}]"]),
    (_set("annotations.1.segmentation.counts", "!!"), "error", "bad_rle_counts",
     "annotations[1].segmentation.counts", ["annotation 11", "undecodable"]),
    (_set("annotations.1.segmentation.counts", "3"), "error", "bad_rle_counts",
     "annotations[1].segmentation.counts", ["annotation 11", "3 pixels", f"{H * W}"]),
    (_set("annotations.1.segmentation.counts", [3, 4]), "error", "bad_rle_counts",
     "annotations[1].segmentation.counts", ["annotation 11", "7 pixels"]),
    (_set("annotations.1.segmentation.counts", [H * W + 1, -1]), "error", "bad_rle_counts",
     "annotations[1].segmentation.counts", ["annotation 11"]),
    (_set("annotations.0.bbox", [0, float("nan"), 10, 8]), "error", "bad_bbox", "annotations[0].bbox",
     ["annotation 10", "finite"]),
    (_set("annotations.0.bbox", [0, 0, -10, 8]), "error", "bad_bbox", "annotations[0].bbox",
     ["annotation 10", "negative"]),
    (_set("annotations.0.bbox", [0, 0, 10]), "error", "bad_bbox", "annotations[0].bbox", ["annotation 10", "4"]),
    (_set("annotations.0.area", -1), "error", "bad_area", "annotations[0].area", ["annotation 10"]),
    (_set("images.0.width", 0), "error", "bad_image_size", "images[0].width", ["image 1", "positive integer"]),
    (_set("images.0.height", 20.5), "error", "bad_image_size", "images[0].height", ["image 1"]),
    (_set("images.0.height", True), "error", "bad_image_size", "images[0].height", ["image 1"]),
    (_set("images.0.file_name", "../a.png"), "error", "unsafe_file_name", "images[0].file_name",
     ["image 1", ".."]),
    (_set("images.0.file_name", "/data/a.png"), "error", "unsafe_file_name", "images[0].file_name",
     ["image 1", "absolute"]),
    (_set("images.0.file_name", "C:\\data\\a.png"), "error", "unsafe_file_name", "images[0].file_name",
     ["image 1"]),
    (_delete("images.0.file_name"), "error", "bad_file_name", "images[0].file_name", ["image 1"]),
    (_set("images.1.file_name", "a.png"), "error", "duplicate_file_name", "images[1].file_name",
     ["image 2", "'a.png'", "images[0]"]),
    (_set("images.0.id", "1"), "error", "bad_id", "images[0].id", ["'1'"]),
    (_set("annotations.0", "oops"), "error", "not_an_object", "annotations[0]", ["annotation record", "'oops'"]),
    (_category_zero, "warning", "category_id_zero", "categories[0].id", ["category 0 ('lung')"]),
    (_set("annotations.0.bbox", [8, 0, 10, 8]), "warning", "bbox_mismatch", "annotations[0].bbox",
     ["annotation 10 (image 1)", "[0.0, 0.0, 10.0, 8.0]"]),
    (_set("annotations.0.area", 500), "warning", "area_mismatch", "annotations[0].area",
     ["annotation 10 (image 1)", "80 pixels"]),
    (_set("annotations.0.segmentation", [[40, 40, 50, 40, 50, 50]]), "warning", "empty_mask",
     "annotations[0].segmentation", ["annotation 10"]),
    (_v7_swapped_rle, "warning", "rle_size_swapped", "annotations[1].segmentation.size",
     ["annotation 11 (image 2)", f"[{W}, {H}]"]),
]


@pytest.mark.parametrize("mutate, severity, code, path, texts", RULES, ids=[r[2] + "-" + r[3] for r in RULES])
def test_validation_rule(mutate, severity, code, path, texts):
    data = base()
    mutate(data)
    found = [i for i in validate_dataset(data) if i.code == code and i.path == path]
    assert found, f"no {code} at {path}: {validate_dataset(data)}"
    issue = found[0]
    assert issue.severity == severity
    for text in texts:
        assert text in issue.message
    if path.startswith("annotations[") and code != "not_an_object":
        assert issue.ann_id == data["annotations"][int(path[12])]["id"]
    if severity == "error":
        with pytest.raises(CocoFormatError) as info:
            CocoDataset(data)
        assert issue in info.value.issues
        assert path in str(info.value) and code in str(info.value)
    else:
        ds = CocoDataset(data)
        assert issue in ds.issues
        assert all(i.severity == "warning" for i in ds.issues)


def test_loading_lists_all_errors():
    data = base()
    for mutate in (_set("images.0.width", -1), _set("annotations.0.bbox", [1]), _set("annotations.2.image_id", 5)):
        mutate(data)
    with pytest.raises(CocoFormatError) as info:
        CocoDataset(data)
    codes = {i.code for i in info.value.issues}
    assert {"bad_image_size", "bad_bbox", "unknown_image"} <= codes
    assert str(info.value).count("\n  - ") == 3


def test_issue_str_is_readable():
    issue = ValidationIssue("error", "bad_bbox", "annotation 3 (image 1): bbox ...", "annotations[0].bbox", 1, 3)
    assert str(issue) == "error: annotations[0].bbox: annotation 3 (image 1): bbox ... [bad_bbox]"


def test_rounded_bbox_and_area_are_tolerated():
    data = base()
    data["annotations"][0]["bbox"] = [0.4, 0.3, 10.6, 8.9]
    data["annotations"][0]["area"] = 79.5
    assert validate_dataset(data) == []


@settings(max_examples=40)
@given(st.lists(st.lists(st.booleans(), min_size=7, max_size=7), min_size=5, max_size=5))
def test_rle_string_decoder_matches_pycocotools(rows):
    mask = np.array(rows, np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))
    runs = decode_counts(rle["counts"].decode("ascii"))
    decoded = np.repeat(np.arange(runs.size) % 2, runs).astype(np.uint8).reshape(mask.shape, order="F")
    np.testing.assert_array_equal(decoded, mask)


def test_rle_string_decoder_handles_large_runs():
    mask = np.zeros((300, 400), np.uint8)
    mask[100:250, 10:390] = 1
    mask[7, 5] = 1
    runs = decode_counts(rle_of(mask)["counts"])
    assert runs.sum() == mask.size and runs[1::2].sum() == mask.sum()


# ------------------------------------------------------------- index, queries
def random_dataset(seed: int = 0, n_images: int = 12) -> dict:
    """A dataset with several annotations per image, labels and unannotated images."""
    rng = np.random.default_rng(seed)
    b = CocoBuilder()
    lung, heart = b.add_category("lung", "anatomy"), b.add_category("heart", "anatomy")
    covid, normal = b.add_category("COVID", "finding"), b.add_category("Normal", "finding")
    for i in range(n_images):
        image = b.add_image(f"img{i}.png", H, W, patient_id=f"p{i // 3}")
        for _ in range(int(rng.integers(0, 3))):
            x, y = (int(v) for v in rng.integers(0, 15, 2))
            b.add_annotation(image, int(rng.choice([lung, heart])), [[x, y, x + 8, y, x + 8, y + 4, x, y + 4]])
        if i % 4:
            b.add_label(image, covid if i % 2 else normal)
    return b.build().dataset


def pycocotools_coco(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_index_matches_pycocotools(seed):
    data = random_dataset(seed)
    ds, ref = CocoDataset(data), pycocotools_coco(copy.deepcopy(data))
    assert ds.imgs == ref.imgs and ds.anns == ref.anns and ds.cats == ref.cats
    for image_id in ds.imgs:
        assert ds.img_to_anns[image_id] == ref.imgToAnns[image_id]
    for cat_id in ds.cats:
        assert ds.cat_to_imgs[cat_id] == list(dict.fromkeys(ref.catToImgs[cat_id]))
        assert sorted(ds.img_ids(ds.cats[cat_id]["name"])) == sorted(ref.getImgIds(catIds=[cat_id]))


def test_queries():
    ds = CocoDataset(base(), image_root="/data/root")
    assert ds.cat_id("COVID") == 2
    assert ds.cat_ids() == [1, 2]
    assert ds.cat_ids(["COVID", "lung"]) == [2, 1]
    assert ds.cat_ids(supercategory="anatomy") == [1]
    assert ds.cat_ids("lung", supercategory="finding") == []
    assert ds.img_ids() == [1, 2]
    assert ds.img_ids("COVID") == [2]
    assert ds.img_ids(["lung", "COVID"]) == [1, 2]
    assert ds.img_ids(supercategory="finding") == [2]
    assert [a["id"] for a in ds.anns_for(2)] == [11, 12]
    assert [a["id"] for a in ds.anns_for(2, geometry=True)] == [11]
    assert [a["id"] for a in ds.anns_for(2, geometry=False)] == [12]
    assert [a["id"] for a in ds.anns_for(2, cat_ids=[2])] == [12]
    assert ds.image_labels(1) == [] and ds.image_labels(2) == ["COVID"]
    assert ds.image_path(2) == Path("/data/root/sub/b.png").resolve()
    assert is_label_annotation(ds.anns[12]) and not is_label_annotation(ds.anns[11])
    assert len(ds) == 2


def test_query_errors():
    ds = CocoDataset(base())
    with pytest.raises(ConfigError, match="no category named 'heart'.*'lung', 'COVID'"):
        ds.cat_ids(["heart"])
    with pytest.raises(ConfigError, match="no image with id 9"):
        ds.anns_for(9)
    with pytest.raises(ConfigError, match="image_root is not set"):
        ds.image_path(1)


def test_image_root_resolution(tmp_path):
    path = tmp_path / "coco.json"
    data = base()
    path.write_text(json.dumps(data))
    assert CocoDataset(path).image_root == tmp_path
    assert CocoDataset(path, image_root=tmp_path / "x").image_root == tmp_path / "x"
    data["info"]["image_root"] = "imgs"
    path.write_text(json.dumps(data))
    assert CocoDataset(path).image_root == tmp_path / "imgs"
    assert CocoDataset(path).image_path(2) == (tmp_path / "imgs" / "sub" / "b.png").resolve()
    assert CocoDataset(path, image_root="/r").image_root == Path("/r")
    data["info"]["image_root"] = str(tmp_path / "abs")
    path.write_text(json.dumps(data))
    with pytest.raises(UnsafePathError, match="info.image_root.*is absolute.*--image-root"):
        CocoDataset(path)  # a file may not name an absolute root for itself (issue 17, class 2)
    assert CocoDataset(path, image_root=tmp_path / "abs").image_root == tmp_path / "abs"
    assert CocoDataset(data).image_root == tmp_path / "abs"  # a dict made by code may
    assert CocoDataset(base()).image_root is None


def test_image_path_refuses_escape_with_validate_false(tmp_path):
    data = base()
    data["images"][0]["file_name"] = "../../etc/passwd"
    ds = CocoDataset(data, image_root=tmp_path, validate=False)
    with pytest.raises(UnsafePathError, match="image 1"):
        ds.image_path(1)


# ------------------------------------------------------------- pycocotools
def test_to_pycocotools_ann_to_mask():
    ds = CocoDataset(base())
    coco = ds.to_pycocotools()
    assert sorted(coco.anns) == [10, 11]  # the label annotation 12 is left out
    expected = np.zeros((H, W), np.uint8)
    expected[0:8, 0:10] = 1
    np.testing.assert_array_equal(coco.annToMask(coco.anns[10]), expected)
    np.testing.assert_array_equal(coco.annToMask(coco.anns[11]), box_mask())
    assert coco.anns[10] is not ds.anns[10]


def test_to_pycocotools_fixes_swapped_rle_size():
    data = base()
    _v7_swapped_rle(data)
    coco = CocoDataset(data).to_pycocotools()
    np.testing.assert_array_equal(coco.annToMask(coco.anns[11]), box_mask())
    assert data["annotations"][1]["segmentation"]["size"] == [W, H]  # the dataset itself is untouched


def test_to_pycocotools_evaluates_itself_perfectly():
    ds = CocoDataset(random_dataset(3))
    coco = ds.to_pycocotools()
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
                "segmentation": coco.annToRLE(a)} for a in coco.anns.values()]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(results), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)
    assert all("counts" in a["segmentation"] or isinstance(a["segmentation"], list) for a in ds.anns.values()
               if "segmentation" in a)  # COCOeval rewrote only its copies


# ------------------------------------------------------------------ merge
def second() -> dict:
    return {
        "images": [{"id": 1, "file_name": "c.png", "height": H, "width": W, "view": "PA"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "segmentation": rle_of(box_mask()),
             "area": 30, "bbox": [2, 5, 6, 5], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 2, "segmentation": [[0, 0, 10, 0, 10, 8, 0, 8]],
             "area": 80, "bbox": [0, 0, 10, 8], "iscrowd": 0, "extra": {"k": 1}},
        ],
        "categories": [
            {"id": 1, "name": "COVID", "supercategory": "finding"},
            {"id": 2, "name": "heart", "supercategory": "anatomy"},
            {"id": 3, "name": "lung", "supercategory": "anatomy"},
        ],
    }


def test_merge_renumbers_and_maps_categories_by_name():
    merged = merge([CocoDataset(base()), second()])
    assert [c["name"] for c in merged.dataset["categories"]] == ["lung", "COVID", "heart"]
    assert merged.cat_id("lung") == 1 and merged.cat_id("COVID") == 2 and merged.cat_id("heart") == 3
    assert list(merged.imgs) == [1, 2, 3] and list(merged.anns) == [1, 2, 3, 4, 5, 6]
    assert merged.imgs[1]["patient_id"] == "p1" and merged.imgs[3]["view"] == "PA"
    names = [(a["image_id"], merged.cats[a["category_id"]]["name"]) for a in merged.dataset["annotations"]]
    assert names == [(1, "lung"), (2, "lung"), (2, "COVID"), (3, "COVID"), (3, "lung"), (3, "heart")]
    assert merged.anns[6]["extra"] == {"k": 1}
    assert merged.image_labels(3) == ["COVID"]
    assert list(merged.dataset) == ["info", "images", "annotations", "categories"]
    assert merged.issues == []
    assert CocoDataset.merge([base()]).dataset["annotations"][0]["id"] == 1


def test_merge_does_not_touch_inputs():
    first = base()
    merge([first, second()])
    assert first == base()


def test_merge_conflicting_supercategory():
    other = second()
    other["categories"][0]["supercategory"] = "disease"
    with pytest.raises(CocoFormatError, match="'COVID' has supercategory 'finding' in dataset 0.*'disease' in "
                                              "dataset 1"):
        merge([base(), other])


def test_merge_duplicate_file_names_is_an_error():
    with pytest.raises(CocoFormatError, match="duplicate_file_name"):
        merge([base(), base()])


def test_merge_keeps_a_shared_image_root(tmp_path):
    first = base()
    first["info"]["image_root"] = "images"
    assert merge([CocoDataset(first, tmp_path), CocoDataset(second(), tmp_path)]).image_root == tmp_path
    merged = merge([CocoDataset(first, tmp_path), CocoDataset(second())])
    assert merged.image_root is None and merged.dataset["info"] == {"description": "test"}
    assert first["info"]["image_root"] == "images"


# ----------------------------------------------------------- subset, split
def test_subset():
    ds = CocoDataset(base(), image_root="/x")
    part = ds.subset([2])
    assert list(part.imgs) == [2] and sorted(part.anns) == [11, 12]
    assert part.cats == ds.cats and part.image_root == ds.image_root
    assert part.dataset["info"] == base()["info"]
    part.imgs[2]["split"] = "val"
    assert "split" not in ds.imgs[2]
    with pytest.raises(ConfigError, match="unknown image ids 7"):
        ds.subset([1, 7])


def split_dataset(groups: list[int], labels: list[str] | None = None, key_labels: bool = False) -> CocoDataset:
    """One image per entry of ``groups`` (its patient id); optional label per image."""
    b = CocoBuilder()
    cats = {name: b.add_category(name, "finding") for name in sorted(set(labels or []))}
    for i, group in enumerate(groups):
        extra = {"patient_id": f"p{group}"}
        if labels and key_labels:
            extra["finding"] = labels[i]
        image = b.add_image(f"{i}.png", 8, 8, **extra)
        if labels and not key_labels:
            b.add_label(image, cats[labels[i]])
    return b.build()


FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


@settings(max_examples=25)
@given(groups=st.lists(st.integers(0, 15), min_size=1, max_size=60), seed=st.integers(0, 1000))
def test_split_never_puts_a_group_in_two_parts(groups, seed):
    ds = split_dataset(groups)
    parts = ds.split(FRACTIONS, "patient_id", seed=seed)
    assert list(parts) == ["train", "val", "test"]
    owner = {}
    for name, part in parts.items():
        for img in part.imgs.values():
            assert owner.setdefault(img["patient_id"], name) == name
    assert sorted(i for p in parts.values() for i in p.imgs) == sorted(ds.imgs)


def test_split_honours_fractions():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(150), rng.integers(1, 4, 150)).tolist()
    parts = split_dataset(groups).split(FRACTIONS, "patient_id")
    for name, fraction in FRACTIONS.items():
        assert abs(len(parts[name]) - fraction * len(groups)) <= 3  # the largest group has 3 images


@pytest.mark.parametrize("key_labels", [False, True])
def test_split_stratification_keeps_label_proportions(key_labels):
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(200), rng.integers(1, 4, 200)).tolist()
    labels = ["COVID" if g % 5 == 0 else "Normal" for g in groups]  # 20% of patients, all their images
    ds = split_dataset(groups, labels, key_labels)
    stratify = "finding" if key_labels else STRATIFY_BY_LABELS
    overall = labels.count("COVID") / len(labels)
    for name, part in ds.split(FRACTIONS, "patient_id", stratify_key=stratify, seed=4).items():
        covid = sum(1 for i in part.imgs if (part.imgs[i].get("finding") if key_labels
                                             else part.image_labels(i)[0]) == "COVID")
        assert abs(covid / len(part) - overall) < 0.03, name


def test_split_by_labels_handles_multilabel_and_unlabelled():
    b = CocoBuilder()
    a, c = b.add_category("A", "finding"), b.add_category("C", "finding")
    for i in range(60):
        image = b.add_image(f"{i}.png", 4, 4, patient_id=i)
        if i % 3 == 0:
            b.add_label(image, a)
        if i % 2 == 0:
            b.add_label(image, c)
    parts = b.build().split({"train": 0.5, "test": 0.5}, "patient_id", stratify_key=STRATIFY_BY_LABELS)
    for part in parts.values():
        labels = Counter(name for i in part.imgs for name in part.image_labels(i))
        assert abs(labels["A"] - 10) <= 1 and abs(labels["C"] - 15) <= 1 and len(part) == 30


def test_split_is_deterministic_per_seed():
    rng = np.random.default_rng(2)
    ds = split_dataset(rng.integers(0, 40, 100).tolist())

    def ids(seed):
        return {name: list(part.imgs) for name, part in ds.split(FRACTIONS, "patient_id", seed=seed).items()}

    assert ids(7) == ids(7)
    assert ids(7) != ids(8)


def test_split_missing_group_key_is_an_error_unless_allowed_then_warns_with_count():
    ds = split_dataset([0, 0, 1, 2])
    del ds.imgs[3]["patient_id"]
    ds.imgs[4]["patient_id"] = None
    with pytest.raises(ConfigError, match="2 of 4 images have no 'patient_id'.*--allow-missing-group"):
        ds.split({"a": 0.5, "b": 0.5}, "patient_id")
    with pytest.warns(UserWarning, match="2 of 4 images have no 'patient_id'"):
        parts = ds.split({"a": 0.5, "b": 0.5}, "patient_id", allow_missing_group=True)
    assert sum(len(p) for p in parts.values()) == 4


@pytest.mark.parametrize("fractions", [{}, {"a": 0.5, "b": 0.4}, {"a": -0.5, "b": 1.5}, {"a": float("nan")}])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="fractions"):
        split_dataset([0, 1]).split(fractions, "patient_id")


# -------------------------------------------------------------------- write
def test_write_roundtrip_keeps_order_and_extra_keys(tmp_path):
    data = base()
    data["annotations"][0]["extra"] = {"z": 1, "a": 2}
    data["tag_categories"] = [{"id": 0, "name": "X-ray"}]
    path = tmp_path / "out" / "coco.json"
    CocoDataset(data).write(path)
    text = path.read_text()
    assert json.loads(text) == data
    assert list(json.loads(text)) == ["info", "images", "annotations", "categories", "tag_categories"]
    assert text.index('"z"') < text.index('"a": 2')
    assert CocoDataset(path).dataset == data


def test_write_failure_leaves_original_untouched(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text("original")
    data = base()
    data["images"][1]["age"] = float("nan")
    with pytest.raises(CocoFormatError, match=r"images\[1\]\.age.*not changed"):
        CocoDataset(data).write(path)
    assert path.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["coco.json"]


def test_write_names_non_json_values(tmp_path):
    data = base()
    data["images"][0]["patient_id"] = np.int64(3)
    with pytest.raises(CocoFormatError, match=r"images\[0\]\.patient_id"):
        CocoDataset(data).write(tmp_path / "x.json")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ builder
def test_builder_ids_area_bbox():
    b = CocoBuilder(info={"description": "t"})
    assert b.add_category("lung", "anatomy") == 1
    assert b.add_category("COVID", "finding") == 2
    assert b.add_category("lung", "anatomy") == 1
    assert b.add_image("a.png", H, W, patient_id="p") == 1
    assert b.add_image("b.png", H, W) == 2
    polygon = [[1.5, 2, 12, 2, 12, 9.5, 1.5, 9.5]]
    assert b.add_annotation(1, 1, polygon, polygon_iou=0.99) == 1
    rle = mask_utils.encode(np.asfortranarray(box_mask()))  # bytes counts
    assert b.add_annotation(2, 1, rle) == 2
    assert b.add_label(2, 2) == 3
    ds = b.build()
    reference = mask_utils.merge(mask_utils.frPyObjects(polygon, H, W))
    first = ds.anns[1]
    assert first["area"] == int(mask_utils.area(reference))
    assert first["bbox"] == mask_utils.toBbox(reference).tolist() and first["polygon_iou"] == 0.99
    assert ds.anns[2]["segmentation"] == rle_of(box_mask()) and ds.anns[2]["area"] == 30
    assert ds.anns[2]["bbox"] == [2.0, 5.0, 6.0, 5.0] and ds.anns[2]["iscrowd"] == 0
    assert ds.anns[3] == {"id": 3, "image_id": 2, "category_id": 2, "iscrowd": 0, "area": 0}
    assert ds.imgs[1] == {"id": 1, "file_name": "a.png", "height": H, "width": W, "patient_id": "p"}
    assert list(ds.dataset) == ["info", "images", "annotations", "categories"]
    assert ds.issues == []
    json.dumps(ds.dataset, allow_nan=False)


def test_builder_compresses_uncompressed_rle():
    b = CocoBuilder()
    b.add_category("lung", "anatomy")
    b.add_image("a.png", H, W)
    b.add_annotation(1, 1, {"size": [H, W], "counts": uncompressed_counts(box_mask())})
    assert b.build().anns[1]["segmentation"] == rle_of(box_mask())


@pytest.mark.parametrize("call, match", [
    (lambda b: b.add_category("lung", "finding"), "supercategory"),
    (lambda b: b.add_image("a.png", H, W), "already added"),
    (lambda b: b.add_image("c.png", 0, W), "positive integers"),
    (lambda b: b.add_image("d.png", H, W, id=5), "reserved"),
    (lambda b: b.add_annotation(9, 1, [[0, 0, 1, 0, 1, 1]]), "unknown image id 9"),
    (lambda b: b.add_annotation(1, 9, [[0, 0, 1, 0, 1, 1]]), "unknown category id 9"),
    (lambda b: b.add_annotation(1, 1, [[0, 0, 1, 0]]), "annotation 1 \\(image 1\\): polygon 0 has 2 point"),
    (lambda b: b.add_annotation(1, 1, []), "no polygon"),
    (lambda b: b.add_annotation(1, 1, {"size": [W, H], "counts": "PP"}), "does not match"),
    (lambda b: b.add_annotation(1, 1, {"size": [H, W], "counts": "PP"}), "not a compressed string"),
    (lambda b: b.add_label(1, 5), "unknown category"),
])
def test_builder_errors(call, match):
    b = CocoBuilder()
    b.add_category("lung", "anatomy")
    b.add_image("a.png", H, W)
    with pytest.raises(ConversionError, match=match):
        call(b)


def test_builder_refuses_unsafe_file_name():
    with pytest.raises(UnsafePathError):
        CocoBuilder().add_image("../a.png", H, W)


# ------------------------------------------------- sample: build, summary
@pytest.fixture
def sample_coco(sample_dir, tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """The embedded sample converted to COCO with the builder, written to disk."""
    import csv

    rows = list(csv.DictReader((sample_dir / "metadata.csv").open()))
    b = CocoBuilder()
    lung = b.add_category("lung", "anatomy")
    masks = {}
    for row in rows:
        image = Image.open(sample_dir / "images" / row["filename"])
        image_id = b.add_image(row["filename"], image.height, image.width, patient_id=row["patientid"],
                               view=row["view"])
        b.add_label(image_id, b.add_category(row["finding"], "finding"))
        mask_path = sample_dir / "masks" / row["filename"]
        if mask_path.exists():
            masks[row["filename"]] = (np.asarray(Image.open(mask_path).convert("L")) > 127).astype(np.uint8)
            b.add_annotation(image_id, lung, rle_of(masks[row["filename"]]))
    path = tmp_path / "sample.json"
    b.build().write(path)
    return path, masks


def test_sample_roundtrip_and_summary(sample_coco, sample_dir):
    path, masks = sample_coco
    ds = CocoDataset(path, image_root=sample_dir / "images")
    coco = ds.to_pycocotools()
    for ann in coco.anns.values():
        np.testing.assert_array_equal(coco.annToMask(ann), masks[ds.imgs[ann["image_id"]]["file_name"]])
    summary = ds.summary()
    assert summary["images"] == 56 and summary["annotations_per_category"]["lung"] == len(masks) == 51
    assert summary["label_counts"] == {"COVID-19": 51, "No Finding": 5}
    assert summary["empty_images"] == 5 and summary["missing_image_files"] == []
    assert sum(summary["size_histogram"].values()) == 56
    assert summary["annotations"] == 56 + 51 and summary["categories"] == 3
    assert len(ds.img_ids("lung")) == 51 and len(ds.img_ids(supercategory="finding")) == 56


def test_summary_reports_missing_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    summary = CocoDataset(base(), image_root=tmp_path).summary()
    assert summary["missing_image_files"] == ["sub/b.png"]
    assert summary["size_histogram"] == {f"{H}x{W}": 2}
    assert summary["empty_images"] == 0 and summary["label_counts"] == {"COVID": 1}
    assert CocoDataset(base()).summary()["missing_image_files"] is None


def test_split_with_every_group_key_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = CocoDataset(base()).split({"all": 1.0}, "patient_id")
    assert list(parts["all"].imgs) == [1, 2]


def test_write_elsewhere_keeps_images_findable(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.png").write_bytes(b"x")
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 2, "width": 2}], "categories": [], "annotations": []}
    dataset = CocoDataset(data, image_root=images)
    dataset.write(tmp_path / "splits" / "train.json")
    assert json.loads((tmp_path / "splits" / "train.json").read_text())["info"]["image_root"] == "../imgs"
    with pytest.raises(UnsafePathError, match="'../imgs'.*--image-root"):
        CocoDataset(tmp_path / "splits" / "train.json")  # the root leaves the file's folder: not trusted
    reread = CocoDataset(tmp_path / "splits" / "train.json", image_root=images)
    assert reread.image_path(1) == (images / "a.png").resolve()


def test_merge_files_from_different_roots_prefixes_file_names(tmp_path):
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.png").write_bytes(name.encode())
    parts = [CocoDataset({"images": [{"id": 1, "file_name": "a.png", "height": 2, "width": 2}],
                          "categories": [], "annotations": []}, image_root=tmp_path / name) for name in ("x", "y")]
    merged = CocoDataset.merge(parts)
    assert sorted(img["file_name"] for img in merged.imgs.values()) == ["x/a.png", "y/a.png"]
    assert {merged.image_path(i).read_bytes() for i in merged.imgs} == {b"x", b"y"}
