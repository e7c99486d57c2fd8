"""`cococxr convert folders`: class-per-folder trees -> COCO image-level labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.class_folders import convert_class_folders, convert_class_folders_by_split, detect_layout
from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.io import write_png


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def make_tree(root: Path, files: list[str]) -> Path:
    """Write a small PNG (size from the file's position) at each relative path."""
    for k, name in enumerate(files):
        write_png(root / name, np.full((10 + k, 12), k, np.uint8))
    return root


@pytest.fixture
def split_tree(tmp_path) -> Path:
    return make_tree(tmp_path / "tree", ["Train/COVID/a.png", "Train/COVID/b.png", "Train/Normal/c.png",
                                         "Test/COVID/d.png", "Test/Viral Pneumonia/e.png"])


def test_one_file_per_split(split_tree, tmp_path):
    datasets, report = convert_class_folders_by_split(split_tree, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.json", "train.json"]
    train, test = (json.loads((tmp_path / "out" / f"{s}.json").read_text()) for s in ("train", "test"))
    assert train["categories"] == test["categories"] == [
        {"id": 1, "name": "COVID", "supercategory": "finding"},
        {"id": 2, "name": "Normal", "supercategory": "finding"},
        {"id": 3, "name": "Viral Pneumonia", "supercategory": "finding"}]
    assert [i["file_name"] for i in train["images"]] == ["Train/COVID/a.png", "Train/COVID/b.png", "Train/Normal/c.png"]
    assert train["images"][2]["height"] == 12 and train["images"][2]["width"] == 12
    assert [a["category_id"] for a in test["annotations"]] == [1, 3]
    assert all(set(a) == {"id", "image_id", "category_id", "iscrowd", "area"} for a in train["annotations"])
    assert report.counts["images in"] == report.counts["images out"] == 5
    reread = CocoDataset(tmp_path / "out" / "test.json", split_tree)
    assert reread.image_labels(2) == ["Viral Pneumonia"]
    assert (tmp_path / "out" / reread.dataset["info"]["image_root"]).resolve() == split_tree.resolve()
    for split in ("train", "test"):
        COCO(str(tmp_path / "out" / f"{split}.json"))


def test_single_file_with_split_key(split_tree, tmp_path):
    out = tmp_path / "all.json"
    ds, _ = convert_class_folders(split_tree, out)
    images = json.loads(out.read_text())["images"]
    assert [(i["file_name"], i["split"]) for i in images][:2] == [("Test/COVID/d.png", "test"),
                                                                  ("Test/Viral Pneumonia/e.png", "test")]
    assert sorted({i["split"] for i in images}) == ["test", "train"]
    assert len(ds.anns) == 5


def test_plain_class_folders(tmp_path):
    root = make_tree(tmp_path / "plain", ["NORMAL/x.png", "PNEUMONIA/y.png", "PNEUMONIA/sub/z.png"])
    assert detect_layout(root) == "classes"
    ds, report = convert_class_folders(root, tmp_path / "plain.json")
    assert [ds.image_labels(i) for i in ds.imgs] == [["NORMAL"], ["PNEUMONIA"], ["PNEUMONIA"]]
    assert "split" not in ds.imgs[1]
    with pytest.raises(ConfigError, match="no <Split>/<Class>"):
        convert_class_folders_by_split(root, tmp_path / "dir")


def test_workers_identical(split_tree, tmp_path):
    outs = [tmp_path / f"w{w}.json" for w in (1, 2)]
    for out, workers in zip(outs, (1, 2), strict=True):
        convert_class_folders(split_tree, out, workers=workers)
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_bad_trees(tmp_path):
    (tmp_path / "empty" / "A").mkdir(parents=True)
    with pytest.raises(ConversionError, match="without images"):
        convert_class_folders(tmp_path / "empty")
    root = make_tree(tmp_path / "bad", ["A/x.png"])
    (root / "A" / "x.png").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"x\.png"):
        convert_class_folders(root)


def test_cli(split_tree, tmp_path, capsys):
    assert main(["convert", "folders", str(split_tree), "--out-dir", str(tmp_path / "o")]) == 0
    assert "images out" in capsys.readouterr().out
    assert main(["convert", "folders", str(split_tree)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["convert", "folders", str(split_tree), "-o", str(tmp_path / "one.json")]) == 0
