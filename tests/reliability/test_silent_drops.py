"""Issue 17 class 8: every input file is converted or counted as ignored; colliding ids are errors.

Inputs: the cxr-sample X-rays and masks, their metadata.csv, and the covid-radiography
layout (../shared/data), copied and then given a WebP image, stray files, a class folder
with masks but no images, two images with one stem, a row written ``./x.png``.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest
from helpers import shared
from PIL import Image

from cococxr.cli import main
from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.converters.class_folders import convert_class_folders
from cococxr.converters.covid_radiography import convert_covid_radiography
from cococxr.converters.export_rle_csv import export_rle_csv
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.converters.metadata import convert_metadata
from cococxr.errors import ConversionError
from cococxr.rle import coco_rle_encode as rle_from_mask

STEMS = ("00870a9c", "02b76460", "0a7faa2a")


def _webp(source: Path, target: Path) -> None:
    Image.open(source).save(target, format="WEBP")


def test_convert_folders_counts_every_file_it_leaves_out(tmp_path):
    sample = shared("cxr-sample")
    for k, stem in enumerate(STEMS):
        folder = tmp_path / "tree" / ("COVID" if k else "Normal")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / "images" / f"{stem}.png", folder)
    _webp(sample / "images" / f"{STEMS[0]}.png", tmp_path / "tree" / "COVID" / "extra.webp")
    (tmp_path / "tree" / "COVID" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "tree" / "README.txt").write_text("class folders\n")
    ds, report = convert_class_folders(tmp_path / "tree")
    assert len(ds.imgs) == 3
    assert report.counts["files ignored"] == 3
    text = report.format()
    assert "ignored 1 file(s), not an image type (.webp): COVID/extra.webp" in text
    assert "hidden file: COVID/.DS_Store" in text
    assert "not inside a class folder: README.txt" in text


def test_convert_folders_with_nothing_left_out_says_zero(tmp_path):
    folder = tmp_path / "tree" / "COVID"
    folder.mkdir(parents=True)
    shutil.copy(shared("cxr-sample") / "images" / f"{STEMS[0]}.png", folder)
    _, report = convert_class_folders(tmp_path / "tree")
    assert report.counts["files ignored"] == 0 and "ignored" not in "".join(report.notes)


def _covid_tree(tmp_path: Path) -> Path:
    source = shared("covid-radiography-layout")
    root = tmp_path / "tree"
    for cls in ("COVID", "Lung_Opacity"):
        for sub in ("images", "masks"):
            (root / cls / sub).mkdir(parents=True)
            for name in sorted(p.name for p in (source / cls / "images").iterdir())[:2]:
                shutil.copy(source / cls / sub / name, root / cls / sub)
    return root


def test_covid_class_with_masks_but_no_images_is_an_error(tmp_path):
    root = _covid_tree(tmp_path)
    shutil.copytree(root / "COVID" / "masks", root / "Normal" / "masks")
    with pytest.raises(ConversionError, match=r"'Normal' have a masks folder but no images folder"):
        convert_covid_radiography(root)


def test_covid_counts_stray_files(tmp_path):
    root = _covid_tree(tmp_path)
    first = next((root / "COVID" / "images").iterdir())
    _webp(first, root / "COVID" / "images" / "extra.webp")
    (root / "COVID" / "notes.txt").write_text("x\n")
    (root / "manifest.csv").write_text("file\n")
    ds, report = convert_covid_radiography(root)
    assert len(ds.imgs) == 4 and report.counts["files ignored"] == 3
    text = report.format()
    assert "not an image type (.webp): COVID/images/extra.webp" in text
    assert "not in images/ or masks/: COVID/notes.txt" in text and "not inside a class folder: manifest.csv" in text


def test_convert_masks_counts_stray_files(tmp_path):
    sample = shared("cxr-sample")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in STEMS[:2]:
        shutil.copy(sample / "images" / f"{stem}.png", tmp_path / "images")
        shutil.copy(sample / "masks" / f"{stem}.png", tmp_path / "masks")
    _webp(sample / "images" / f"{STEMS[2]}.png", tmp_path / "images" / f"{STEMS[2]}.webp")
    _, report = convert_mask_folders(tmp_path / "images", tmp_path / "masks")
    assert report.counts["files ignored"] == 1
    assert f"not an image type (.webp): {(tmp_path / 'images').as_posix()}/{STEMS[2]}.webp" in report.format()


def _same_stem_dataset(tmp_path: Path) -> Path:
    sample = shared("cxr-sample")
    for sub in ("a", "b"):
        (tmp_path / "images" / sub).mkdir(parents=True)
        shutil.copy(sample / "images" / f"{STEMS[0]}.png", tmp_path / "images" / sub / "x.png")
        shutil.copy(sample / "masks" / f"{STEMS[0]}.png", tmp_path / f"mask_{sub}.png")
    mask = cv2.imread(str(tmp_path / "mask_a.png"), cv2.IMREAD_GRAYSCALE)
    builder = CocoBuilder(info={"image_root": "images"})
    cat = builder.add_category("lung", "anatomy")
    for sub in ("a", "b"):
        image_id = builder.add_image(f"{sub}/x.png", *mask.shape)
        builder.add_annotation(image_id, cat, rle_from_mask((mask > 0).astype("uint8")))
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({**builder.build().dataset, "info": {"image_root": "images"}}))
    return path


def test_export_rle_csv_refuses_two_images_with_one_image_id(tmp_path):
    path = _same_stem_dataset(tmp_path)
    with pytest.raises(ConversionError, match=r"'x': image 1 \('a/x.png'\) and image 2 \('b/x.png'\)"):
        export_rle_csv(path, order="column")
    assert main(["export", "rle-csv", str(path), "--order", "column", "--out", str(tmp_path / "o.csv")]) == 2
    assert not (tmp_path / "o.csv").exists()


def test_export_rle_csv_with_unique_kaggle_ids_works(tmp_path):
    path = _same_stem_dataset(tmp_path)
    data = json.loads(path.read_text())
    for img in data["images"]:
        img["kaggle_id"] = img["file_name"].replace("/", "_")
    text, _ = export_rle_csv(CocoDataset(data), order="column")
    assert {line.split(",")[0] for line in text.splitlines()[1:]} == {"a_x.png", "b_x.png"}


def _metadata(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_convert_metadata_refuses_the_same_file_written_twice(tmp_path):
    sample = shared("cxr-sample")
    rows = list(csv.DictReader((sample / "metadata.csv").open(encoding="utf-8")))[:3]
    copy = dict(rows[1], filename=f"./{rows[1]['filename']}", finding="No Finding")
    path = _metadata(tmp_path, [*rows, copy])
    with pytest.raises(ConversionError, match=rf"line 5: file '{rows[1]['filename']}' \(written "
                                              rf"'\./{rows[1]['filename']}': the same file\) repeats line 3"):
        convert_metadata(path, sample / "images")


def test_convert_metadata_normalises_dot_segments(tmp_path):
    sample = shared("cxr-sample")
    rows = list(csv.DictReader((sample / "metadata.csv").open(encoding="utf-8")))[:2]
    rows[0]["filename"] = f"./{rows[0]['filename']}"
    ds, _ = convert_metadata(_metadata(tmp_path, rows), sample / "images")
    assert [img["file_name"] for img in ds.imgs.values()] == [rows[0]["filename"][2:], rows[1]["filename"]]
