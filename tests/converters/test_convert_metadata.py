"""Metadata tables -> COCO image-level labels: filters, kept columns, missing files, real tables."""
from __future__ import annotations

import csv as csv_module
import re

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from cococxr.cli import main
from cococxr.converters.metadata import convert_metadata
from cococxr.errors import ConfigError, ConversionError, UnsafePathError

from helpers import SAMPLE, shared

ROWS = [
    ("a.png", "COVID-19", "PA", "X-ray", "p1", "M", "71"),
    ("b.png", "No Finding", "AP", "X-ray", "p2", "F", ""),
    ("c.png", "COVID-19, ARDS", "L", "X-ray", "p2", "F", "40"),
    ("d.png", "Pneumonia", "PA", "CT", "p3", "M", "55"),
    ("e.png", "", "AP Supine", "X-ray", "p4", "", "30"),
]
HEADER = "filename,finding,view,modality,patientid,sex,age"


@pytest.fixture
def table(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for k, row in enumerate(ROWS):
        cv2.imwrite(str(images / row[0]), np.zeros((10 + k, 20), np.uint8))
    path = tmp_path / "metadata.csv"
    lines = [HEADER] + [",".join(f'"{v}"' if "," in v else v for v in row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path, images


def test_labels_filters_and_kept_columns(table, tmp_path):
    path, images = table
    dataset, report = convert_metadata(path, images, tmp_path / "coco.json", filters=["modality=X-ray"],
                                       keep="patientid:patient_id,view,age")
    COCO(str(tmp_path / "coco.json"))
    assert [i["file_name"] for i in dataset.dataset["images"]] == ["a.png", "b.png", "c.png", "e.png"]
    first = dataset.dataset["images"][0]
    assert first == {"id": 1, "file_name": "a.png", "height": 10, "width": 20, "patient_id": "p1", "view": "PA",
                     "age": "71"}
    assert "age" not in dataset.dataset["images"][1]  # empty cells are left out
    assert {c["name"]: c["supercategory"] for c in dataset.dataset["categories"]} == {
        "COVID-19": "finding", "COVID-19, ARDS": "finding", "No Finding": "finding"}
    labels = [a for a in dataset.dataset["annotations"]]
    assert all("segmentation" not in a and "bbox" not in a for a in labels)
    assert dataset.image_labels(1) == ["COVID-19"]
    assert report.counts["rows in"] == 5
    assert report.counts["rows filtered out"] + report.counts["images out"] == 5
    assert report.counts["images without a label"] == 1


def test_label_split_and_default_keep(table):
    path, images = table
    dataset, report = convert_metadata(path, images, label_split=",", filters=["view in PA, L", "age >= 40"])
    assert sorted(c["name"] for c in dataset.dataset["categories"]) == ["ARDS", "COVID-19", "Pneumonia"]
    assert dataset.image_labels(2) == ["COVID-19", "ARDS"]
    assert dataset.dataset["images"][0]["patientid"] == "p1"  # every column kept by default
    assert report.counts["labels out: COVID-19"] == 2


def test_missing_image_names_the_row_or_is_skipped(table):
    path, images = table
    (images / "c.png").unlink()
    with pytest.raises(ConversionError, match=r"line 4: image .*c\.png does not exist"):
        convert_metadata(path, images)
    dataset, report = convert_metadata(path, images, skip_missing=True)
    assert report.counts["rows skipped: image missing"] == 1
    assert len(dataset.imgs) == 4


def test_bad_filters_and_columns(table):
    path, images = table
    with pytest.raises(ConversionError, match=r"no column 'modalty'.*columns found: \['filename', 'finding'"):
        convert_metadata(path, images, filters=["modalty=X-ray"])
    with pytest.raises(ConfigError, match="at position 11"):
        convert_metadata(path, images, filters=["view in PA,,AP"])
    with pytest.raises(ConversionError, match="no column 'file'"):
        convert_metadata(path, images, file_column="file")
    with pytest.raises(ConfigError, match="reserved"):
        convert_metadata(path, images, keep="patientid:id")


def test_duplicate_and_escaping_file_names(tmp_path, table):
    _, images = table
    path = tmp_path / "dup.csv"
    path.write_text("filename,finding\na.png,X\nb.png,Y\na.png,Z\n")
    with pytest.raises(ConversionError, match=r"line 4: file 'a.png' repeats line 2"):
        convert_metadata(path, images)
    path.write_text("filename,finding\n../images/a.png,X\n")
    with pytest.raises(UnsafePathError, match="line 2"):
        convert_metadata(path, images)


def test_bom_crlf_and_workers(tmp_path, table):
    path, images = table
    (tmp_path / "crlf").mkdir()
    crlf = tmp_path / "crlf" / "metadata.csv"
    crlf.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    convert_metadata(path, images, tmp_path / "lf.json")
    convert_metadata(crlf, images, tmp_path / "crlf.json", workers=2)
    assert (tmp_path / "lf.json").read_bytes() == (tmp_path / "crlf.json").read_bytes()


def test_cli(table, tmp_path, capsys):
    path, images = table
    code = main(["convert", "metadata", str(path), "--images", str(images), "--out", str(tmp_path / "m.json"),
                 "--filter", "view not in L", "--filter", "modality=X-ray", "--label-column", ""])
    assert code == 0
    assert re.search(r"images out +: 3\n", capsys.readouterr().out)
    assert not COCO(str(tmp_path / "m.json")).getCatIds()


def test_embedded_sample_metadata():
    dataset, report = convert_metadata(SAMPLE / "metadata.csv", SAMPLE / "images",
                                       keep="patientid:patient_id,view,sex,age")
    assert report.counts["images out"] == 56
    assert set(dataset.image_labels(1)) <= {"COVID-19", "No Finding"}


def test_real_ieee8023_metadata_matches_pandas(tmp_path):
    data = shared("cxr-lungs")
    filters = ["modality=X-ray", "view in PA,AP", "age >= 50"]
    dataset, report = convert_metadata(data / "metadata.csv", data / "images", tmp_path / "c.json", filters=filters,
                                       keep="patientid:patient_id,view,sex,age")
    frame = pd.read_csv(data / "metadata.csv", dtype=str, keep_default_na=False)
    age = pd.to_numeric(frame["age"].replace("", None), errors="coerce")
    expected = frame[(frame.modality == "X-ray") & frame.view.isin(["PA", "AP"]) & (age >= 50)]
    assert [i["file_name"] for i in dataset.dataset["images"]] == expected.filename.tolist()
    assert [dataset.image_labels(i)[0] for i in dataset.imgs] == expected.finding.tolist()
    assert report.counts["rows filtered out"] == len(frame) - len(expected)
    coco = COCO(str(tmp_path / "c.json"))
    assert len(coco.imgs) == len(expected)
    with open(data / "metadata.csv", newline="") as fh:
        sizes = {r["filename"]: r for r in csv_module.DictReader(fh)}
    img = dataset.dataset["images"][0]
    assert max(img["height"], img["width"]) <= 512 and sizes[img["file_name"]]["patientid"] == img["patient_id"]
