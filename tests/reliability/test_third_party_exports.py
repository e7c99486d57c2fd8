"""Issue 17 class 10: third-party exports.

``segmentation: []`` (bounding-box-only annotations, as Roboflow and CVAT export them) is a
warning saying they carry no mask; COCO panoptic and caption files are named as such;
warnings print on the command line as one clean line. Inputs are cut from V7 Labs' real
export (../shared/data/v7-coco) and the cxr-sample images.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import shared

from cococxr.coco import CocoDataset, validate_dataset
from cococxr.errors import CocoFormatError
from cococxr.masks import annotation_to_mask


@pytest.fixture(scope="module")
def v7_two() -> dict:
    """Two images of the real export with their polygon annotations."""
    data = json.loads((shared("v7-coco") / "annotations.json").read_text(encoding="utf-8"))
    keep = [img for img in data["images"] if any(a["image_id"] == img["id"] and not a["iscrowd"]
                                                  for a in data["annotations"])][:2]
    ids = {img["id"] for img in keep}
    return {"images": keep, "categories": data["categories"],
            "annotations": [a for a in data["annotations"] if a["image_id"] in ids and not a["iscrowd"]]}


def _bbox_only(data: dict, n: int = 2) -> dict:
    data = json.loads(json.dumps(data))
    for ann in data["annotations"][:n]:
        ann["segmentation"] = []
    return data


def test_empty_segmentation_is_a_warning_that_says_no_mask(v7_two):
    issues = validate_dataset(_bbox_only(v7_two))
    empty = [i for i in issues if i.code == "empty_segmentation"]
    assert len(empty) == 2 and all(i.severity == "warning" for i in empty)
    assert "carries no mask" in empty[0].message and "bounding-box-only" in empty[0].message
    assert not [i for i in issues if i.severity == "error"]


def test_loading_warns_once_and_the_mask_is_empty(v7_two):
    data = _bbox_only(v7_two)
    with pytest.warns(UserWarning, match=r"2 annotation\(s\) have 'segmentation': \[\].*carry no mask") as record:
        ds = CocoDataset(data)
    assert len([w for w in record if "segmentation" in str(w.message)]) == 1
    ann = data["annotations"][0]
    img = ds.imgs[ann["image_id"]]
    assert not annotation_to_mask(ann, img["height"], img["width"]).any()


def test_a_file_with_masks_does_not_warn(v7_two):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CocoDataset(v7_two)


def _cli(argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COCOCXR_PROGRESS": "0", "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-m", "cococxr", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_warning_is_one_clean_line(v7_two, tmp_path):
    (tmp_path / "coco.json").write_text(json.dumps(_bbox_only(v7_two)))
    result = _cli(["split", "coco.json", "--by", "id", "--fractions", "a=0.5,b=0.5", "--out-dir", "parts"],
                  tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cococxr: warning: coco.json: 2 annotation(s)")
    assert "UserWarning" not in result.stderr and ".py:" not in result.stderr


def test_validate_prints_the_warning(v7_two, tmp_path):
    (tmp_path / "coco.json").write_text(json.dumps(_bbox_only(v7_two, 1)))
    result = _cli(["validate", "coco.json"], tmp_path)
    assert result.returncode == 0
    assert "WARNING empty_segmentation" in result.stdout and "0 error(s), " in result.stdout


def _panoptic(v7_two) -> dict:
    images = v7_two["images"]
    return {"images": images, "categories": [{"id": 1, "name": "lung", "isthing": 0}],
            "annotations": [{"image_id": img["id"], "file_name": f"{Path(img['file_name']).stem}.png",
                             "segments_info": [{"id": 1, "category_id": 1, "area": 10, "bbox": [0, 0, 5, 2],
                                                "iscrowd": 0}]} for img in images]}


def _captions(v7_two) -> dict:
    return {"info": {}, "images": v7_two["images"],
            "annotations": [{"id": k, "image_id": img["id"], "caption": "a chest X-ray"}
                            for k, img in enumerate(v7_two["images"], 1)]}


@pytest.mark.parametrize("make, kind", [(_panoptic, "COCO panoptic file"), (_captions, "COCO caption file")])
def test_other_coco_tasks_are_named(v7_two, tmp_path, make, kind):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(make(v7_two)))
    with pytest.raises(CocoFormatError, match=kind):
        CocoDataset(path)
    assert [i.message for i in validate_dataset(make(v7_two))][0].startswith(f"dataset: this is a {kind}")
    result = _cli(["validate", "other.json"], tmp_path)
    assert result.returncode == 2 and kind in result.stderr and "other.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_rasterising_empty_polygons_gives_zeros():
    assert not annotation_to_mask({"segmentation": []}, 4, 6).any()
    assert annotation_to_mask({"segmentation": []}, 4, 6).shape == (4, 6)
    assert np.asarray(annotation_to_mask({"segmentation": [[0, 0, 5, 0, 5, 3]]}, 4, 6)).any()
