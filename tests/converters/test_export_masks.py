"""`cococxr export masks`: COCO -> label-map or per-class mask PNG folders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cococxr.cli import main
from cococxr.coco import CocoBuilder
from cococxr.converters.export_masks import export_masks
from cococxr.errors import ConfigError, ConversionError
from cococxr.io import read_mask
from cococxr.rle import coco_rle_encode


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def box(h, w, y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


@pytest.fixture
def coco_file(tmp_path):
    """Two classes overlapping on image 1, a label, and an image with no geometry."""
    b = CocoBuilder()
    lung, heart = b.add_category("lung", "anatomy"), b.add_category("heart", "anatomy")
    covid = b.add_category("COVID", "finding")
    one = b.add_image("sub/one.jpg", 8, 10)
    b.add_annotation(one, lung, coco_rle_encode(box(8, 10, 1, 6, 1, 6)))
    b.add_annotation(one, heart, coco_rle_encode(box(8, 10, 4, 8, 4, 9)))
    b.add_annotation(one, lung, [[7.0, 0.0, 9.0, 0.0, 9.0, 2.0, 7.0, 2.0]])
    b.add_label(one, covid)
    b.add_label(b.add_image("two.png", 5, 6), covid)
    path = tmp_path / "in.json"
    b.build().write(path)
    return path


def test_label_map(coco_file, tmp_path):
    report = export_masks(coco_file, tmp_path / "out")
    label = read_mask(tmp_path / "out" / "sub" / "one.png")
    assert label.dtype == np.uint8 and label.shape == (8, 10)
    assert label[2, 2] == 1 and label[5, 5] == 2 and label[7, 8] == 2 and label[0, 0] == 0
    assert label[1, 8] == 1  # the polygon
    assert json.loads((tmp_path / "out" / "class_map.json").read_text()) == {"1": "lung", "2": "heart"}
    empty = read_mask(tmp_path / "out" / "two.png")
    assert empty.shape == (5, 6) and not empty.any()
    counts = report.counts
    assert counts["images in"] == counts["mask files written"] == 2
    assert counts["images with an empty mask"] == 1
    assert counts["geometry annotations exported"] == 3 and counts["annotations in"] == 5
    reordered = export_masks(coco_file, tmp_path / "re", classes=["heart", "lung"])
    assert read_mask(tmp_path / "re" / "sub" / "one.png")[5, 5] == 2  # lung now wins the overlap
    assert "1=heart, 2=lung" in reordered.notes[0]


def test_per_class(coco_file, tmp_path):
    export_masks(coco_file, tmp_path / "out", mode="per-class", values=1)
    lung = read_mask(tmp_path / "out" / "lung" / "sub" / "one.png")
    heart = read_mask(tmp_path / "out" / "heart" / "sub" / "one.png")
    assert set(np.unique(lung)) == {0, 1} and lung.sum() == 25 + 4
    assert np.array_equal(heart, box(8, 10, 4, 8, 4, 9))  # exact, even where lung overlaps
    export_masks(coco_file, tmp_path / "o255", mode="per-class", classes=["heart"])
    assert sorted(p.name for p in (tmp_path / "o255").iterdir()) == ["heart"]
    assert read_mask(tmp_path / "o255" / "heart" / "sub" / "one.png").max() == 255


def test_many_classes_give_uint16(tmp_path):
    b = CocoBuilder()
    ids = [b.add_category(f"c{k}", "anatomy") for k in range(300)]
    image = b.add_image("a.png", 4, 4)
    b.add_annotation(image, ids[-1], coco_rle_encode(box(4, 4, 0, 2, 0, 2)))
    export_masks(b.build(), tmp_path / "out")
    label = read_mask(tmp_path / "out" / "a.png")
    assert label.dtype == np.uint16 and label[0, 0] == 300


def test_bad_requests(coco_file, tmp_path):
    with pytest.raises(ConfigError, match="no category named 'liver'"):
        export_masks(coco_file, tmp_path / "o", classes=["liver"])
    with pytest.raises(ConfigError):
        export_masks(coco_file, tmp_path / "o", values=7)
    b = CocoBuilder()
    b.add_category("lung", "anatomy")
    b.add_image("a.png", 4, 4)
    b.add_image("a.jpg", 4, 4)
    with pytest.raises(ConversionError, match="would both write a.png"):
        export_masks(b.build(), tmp_path / "clash")
    assert not (tmp_path / "clash").exists()


def test_workers_identical(coco_file, tmp_path):
    for workers in (1, 2):
        export_masks(coco_file, tmp_path / f"w{workers}", mode="per-class", workers=workers)
    for path in sorted((tmp_path / "w1").rglob("*.png")):
        assert path.read_bytes() == (tmp_path / "w2" / path.relative_to(tmp_path / "w1")).read_bytes()


def test_cli(coco_file, tmp_path, capsys):
    assert main(["export", "masks", str(coco_file), "-o", str(tmp_path / "o"), "--mode", "per-class",
                 "--classes", "lung", "--values", "1"]) == 0
    assert "mask files written" in capsys.readouterr().out
    assert read_mask(tmp_path / "o" / "lung" / "two.png").shape == (5, 6)
