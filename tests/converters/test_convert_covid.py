"""`cococxr convert covid-radiography`: Kaggle layout -> lung masks + image-level labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.covid_radiography import convert_covid_radiography
from cococxr.converters.export_masks import export_masks
from cococxr.errors import ConversionError
from cococxr.io import read_mask, write_png
from cococxr.preprocess import resize_mask
from helpers import shared


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


@pytest.fixture
def layout(tmp_path) -> Path:
    """COVID (2 images) and Normal (1) with 24x24 masks for 30x30 images; Viral Pneumonia without masks."""
    root = tmp_path / "covid"
    rng = np.random.default_rng(1)
    for cls, stems in (("COVID", ["COVID-1", "COVID-2"]), ("Normal", ["Normal-1"])):
        for k, stem in enumerate(stems):
            write_png(root / cls / "images" / f"{stem}.png", rng.integers(0, 255, (30, 30), dtype=np.uint8))
            mask = np.zeros((24, 24), np.uint8)
            mask[3 + k:15, 2:10 + k] = 255
            mask[5:20, 14:21] = 255
            write_png(root / cls / "masks" / f"{stem}.png", mask)
    write_png(root / "Viral Pneumonia" / "images" / "Viral Pneumonia-1.png", np.zeros((30, 30), np.uint8))
    (root / "README.md.txt").write_text("the real dataset has loose files at the top")
    return root


def test_labels_only_class_needs_allow_missing(layout, tmp_path):
    with pytest.raises(ConversionError, match="'Viral Pneumonia' has no masks folder"):
        convert_covid_radiography(layout, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_layout_round_trip(layout, tmp_path):
    out = tmp_path / "coco.json"
    ds, report = convert_covid_radiography(layout, out, allow_missing_masks=True)
    counts = report.counts
    assert counts["images in"] == counts["images out"] == 4
    assert counts["masks in"] == counts["masks converted"] == counts["masks enlarged to their image (nearest)"] == 3
    assert counts["images without mask"] == 1
    data = json.loads(out.read_text())
    assert [(c["name"], c["supercategory"]) for c in data["categories"]] == [
        ("lung", "anatomy"), ("COVID", "finding"), ("Normal", "finding"), ("Viral Pneumonia", "finding")]
    assert [i["file_name"] for i in data["images"]][:1] == ["COVID/images/COVID-1.png"]
    assert data["images"][0]["mask_resized_from"] == [24, 24]
    assert "mask_resized_from" not in data["images"][3]
    assert [ds.image_labels(i) for i in ds.imgs] == [["COVID"], ["COVID"], ["Normal"], ["Viral Pneumonia"]]
    assert (out.parent / data["info"]["image_root"]).resolve() == layout.resolve()
    COCO(str(out))
    export_masks(out, tmp_path / "masks", mode="per-class")
    for original in layout.glob("*/masks/*.png"):
        cls, stem = original.parent.parent.name, original.name
        expected = resize_mask(read_mask(original), (30, 30))
        assert np.array_equal(read_mask(tmp_path / "masks" / "lung" / cls / "images" / stem), expected)


def test_workers_identical_and_manifest(layout, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,view,license\nCOVID/images/COVID-1.png,PA,CC BY 4.0\nNormal-1.png,AP,\n")
    outs = []
    for workers in (1, 2):
        outs.append(tmp_path / f"w{workers}.json")
        _, report = convert_covid_radiography(layout, outs[-1], allow_missing_masks=True, workers=workers,
                                              manifest=manifest, keep="view,license")
    assert outs[0].read_bytes() == outs[1].read_bytes()
    images = json.loads(outs[0].read_text())["images"]
    assert images[0]["view"] == "PA" and images[0]["license"] == "CC BY 4.0"
    assert images[2]["view"] == "AP" and "license" not in images[2]
    assert report.counts["images without metadata row"] == 2


def test_cli(layout, tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["convert", "covid-radiography", str(layout), "--allow-missing-masks", "-o", str(out)]) == 0
    assert "masks enlarged to their image (nearest) : 3" in capsys.readouterr().out
    assert main(["convert", "covid-radiography", str(layout), "--size-mismatch", "error", "-o", str(out),
                 "--allow-missing-masks"]) == 2
    assert "24x24" in capsys.readouterr().err


def test_real_layout_round_trip(tmp_path):
    root = shared("covid-radiography-layout")
    out = tmp_path / "covid.json"
    ds, report = convert_covid_radiography(root, out, manifest=root / "manifest.csv",
                                           keep="view,license,source_file:source", workers=2)
    n = len(list(root.glob("*/images/*.png")))
    assert report.counts["images in"] == report.counts["images out"] == report.counts["masks converted"] == n
    assert report.counts["masks enlarged to their image (nearest)"] == n
    assert sum(v for k, v in report.counts.items() if k.startswith("labels out")) == n
    assert {c["name"] for c in ds.cats.values()} >= {"lung", "COVID", "Lung_Opacity", "Viral Pneumonia"}
    assert all(img["mask_resized_from"] == [256, 256] and (img["height"], img["width"]) == (299, 299)
               for img in ds.imgs.values())
    assert all("source" in img for img in ds.imgs.values())
    COCO(str(out))
    export_masks(CocoDataset(out, root), tmp_path / "back", mode="per-class", workers=2)
    for original in sorted(root.glob("*/masks/*.png")):
        relative = original.relative_to(root).as_posix().replace("/masks/", "/images/")
        expected = resize_mask(read_mask(original), (299, 299))
        assert np.array_equal(read_mask(tmp_path / "back" / "lung" / relative), expected), original
