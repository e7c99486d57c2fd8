"""Kaggle RLE CSV -> COCO -> CSV: presets, exact round trips, bad inputs, inspect-rle."""
from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.export_rle_csv import export_rle_csv
from cococxr.converters.inspect_rle import inspect_rle
from cococxr.converters.rle_csv import convert_rle_csv
from cococxr.errors import ConfigError, ConversionError, RLEError
from cococxr.io import read_mask
from cococxr.rle import (coco_rle_decode, coco_rle_encode, coco_to_runs, kaggle_rle_encode, merge_runs, parse_kaggle_rle,
                         runs_to_coco, runs_to_kaggle)

from helpers import shared

UW_CLASSES = ("large_bowel", "small_bowel", "stomach")


def blob(shape, seed: int) -> np.ndarray:
    """A random filled ellipse (one 8-connected component)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    h, w = shape
    centre = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
    axes = (int(rng.integers(2, max(3, w // 4))), int(rng.integers(2, max(3, h // 4))))
    cv2.ellipse(mask, centre, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    return mask


@pytest.fixture
def uw(tmp_path):
    """A UW-Madison-style tree: 16-bit PNGs named slice_S_W_H_SW_SH.png and a row-major CSV.

    Images are 30 rows x 40 columns (non-square, so width/height order matters).
    """
    lines, masks = ["id,class,segmentation"], {}
    for case, day in ((7, 1), (7, 3), (123, 20)):
        for slc in (1, 2):
            kid = f"case{case}_day{day}_slice_{slc:04d}"
            scans = tmp_path / "train" / f"case{case}" / f"case{case}_day{day}" / "scans"
            scans.mkdir(parents=True, exist_ok=True)
            image = (np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) * 50)
            cv2.imwrite(str(scans / f"slice_{slc:04d}_40_30_1.50_1.63.png"), image)
            for k, name in enumerate(UW_CLASSES):
                seed = case * 100 + day * 10 + slc * 3 + k
                mask = blob((30, 40), seed) if (seed % 3) else np.zeros((30, 40), np.uint8)
                masks[kid, name] = mask
                lines.append(f"{kid},{name},{kaggle_rle_encode(mask, 'row')}")
    csv = tmp_path / "train.csv"
    csv.write_bytes(("\n".join(lines) + "\n").encode())
    return tmp_path, csv, masks


@pytest.fixture
def dsb(tmp_path):
    """A DSB 2018-style tree (RGBA images, one mask file per nucleus) and a CRLF CSV."""
    lines = ["ImageId,EncodedPixels"]
    for n, shape in enumerate(((24, 32), (32, 24), (20, 20))):
        kid = f"{n:02d}abcdef"
        folder = tmp_path / "stage1_train" / kid
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        cv2.imwrite(str(folder / "images" / f"{kid}.png"), np.full((*shape, 4), 90, np.uint8))
        taken = np.zeros(shape, np.uint8)
        for k in range(3):
            mask = blob(shape, 10 * n + k) & (1 - taken)
            taken |= mask
            cv2.imwrite(str(folder / "masks" / f"m{k}.png"), mask * 255)
            lines.append(f"{kid},{kaggle_rle_encode(mask, 'column')}")
    csv = tmp_path / "stage1_train_labels.csv"
    csv.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return tmp_path, csv


def decoded(dataset, ann) -> np.ndarray:
    img = dataset.imgs[ann["image_id"]]
    return coco_rle_decode(ann["segmentation"], img["height"], img["width"])


# ---------------------------------------------------------------------- presets
def test_uw_madison_preset(uw):
    root, csv, masks = uw
    dataset, report = convert_rle_csv(csv, root, root / "coco.json", preset="uw-madison")
    COCO(str(root / "coco.json"))
    assert [c["name"] for c in dataset.dataset["categories"]] == list(UW_CLASSES)
    img = dataset.dataset["images"][0]
    assert img["file_name"] == "train/case7/case7_day1/scans/slice_0001_40_30_1.50_1.63.png"
    assert (img["height"], img["width"]) == (30, 40)
    assert img["pixel_spacing"] == [1.63, 1.50]
    assert (img["case"], img["day"], img["slice"], img["kaggle_id"]) == (7, 1, 1, "case7_day1_slice_0001")
    names = {c["id"]: c["name"] for c in dataset.dataset["categories"]}
    for ann in dataset.dataset["annotations"]:
        kid = dataset.imgs[ann["image_id"]]["kaggle_id"]
        assert np.array_equal(decoded(dataset, ann), masks[kid, names[ann["category_id"]]])
    non_empty = sum(m.any() for m in masks.values())
    assert len(dataset.anns) == non_empty
    assert report.counts["rows in"] == len(masks) == non_empty + report.counts["empty rows (no mask)"]
    assert report.counts["images out"] == 6


def test_uw_madison_round_trip_with_empty_rows(uw, tmp_path):
    root, csv, _ = uw
    convert_rle_csv(csv, root, root / "coco.json", preset="uw-madison")
    text, report = export_rle_csv(root / "coco.json", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_bytes() == csv.read_bytes()
    assert report.counts["rows out"] == len(csv.read_text().splitlines()) - 1
    assert ",stomach,\n" in text  # empty masks are empty cells


def test_submission_mode_one_row_per_image_and_class(uw):
    root, csv, masks = uw
    dataset, _ = convert_rle_csv(csv, root, preset="uw-madison")
    text, _ = export_rle_csv(dataset, submission=True)
    rows = [line.split(",") for line in text.splitlines()[1:]]
    assert len(rows) == 6 * 3
    assert [r[1] for r in rows[:3]] == list(UW_CLASSES)
    expected = {(kid, name): kaggle_rle_encode(mask, "row") for (kid, name), mask in masks.items()}
    assert {(r[0], r[1]): r[2] for r in rows} == expected


def test_dsb_style_round_trip_and_masks(dsb, tmp_path):
    root, csv = dsb
    dataset, report = convert_rle_csv(csv, out=root / "coco.json", preset="dsb2018")
    COCO(str(root / "coco.json"))
    assert report.counts["annotations out: nucleus"] == 9
    for image_id, img in dataset.imgs.items():
        files = sorted((root / img["file_name"]).parent.parent.glob("masks/*.png"))
        mine = [decoded(dataset, a) for a in dataset.img_to_anns[image_id]]
        assert all(np.array_equal(m, (read_mask(f) > 0).astype(np.uint8)) for m, f in zip(mine, files))
    export_rle_csv(root / "coco.json", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_bytes() == csv.read_bytes()


def test_workers_give_identical_output(dsb):
    root, csv = dsb
    convert_rle_csv(csv, out=root / "w1.json", preset="dsb2018", workers=1)
    convert_rle_csv(csv, out=root / "w2.json", preset="dsb2018", workers=2)
    assert (root / "w1.json").read_bytes() == (root / "w2.json").read_bytes()


def test_semantic_mode_merges_rows_of_one_class(dsb):
    root, csv = dsb
    dataset, report = convert_rle_csv(csv, preset="dsb2018", instances=False)
    assert len(dataset.anns) == 3
    assert report.counts["rows merged into another row's annotation"] == 6
    assert any("merged" in note for note in report.notes)


def test_explicit_size_needs_no_images(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("ImageId,EncodedPixels\na.jpg,1 3 10 2\nb.jpg,\nc.jpg,-1\n")
    dataset, report = convert_rle_csv(csv, order="column", image_pattern="{id}", height=4, width=5)
    assert [i["file_name"] for i in dataset.dataset["images"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert report.counts["empty rows (no mask)"] == 2
    assert dataset.dataset["info"]["kaggle_csv"]["empty_value"] == ""
    assert any("'-1'" in note for note in report.notes)


# ---------------------------------------------------------------------- real data
def test_real_dsb2018_round_trip_is_byte_identical(tmp_path):
    data = shared("dsb2018-rle")
    csv = data / "stage1_train_labels.csv"
    dataset, report = convert_rle_csv(csv, out=tmp_path / "dsb.json", preset="dsb2018")
    assert report.counts["rows in"] == report.counts["annotations out: nucleus"] == 3790
    assert report.counts["non-canonical RLE rows"] == 0
    coco = COCO(str(tmp_path / "dsb.json"))
    assert len(coco.getAnnIds()) == 3790
    export_rle_csv(CocoDataset(tmp_path / "dsb.json", data), tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_bytes() == csv.read_bytes()
    for img in list(dataset.imgs.values())[:3]:
        files = sorted((data / img["file_name"]).parent.parent.glob("masks/*.png"))
        truth = {(read_mask(f) > 0).astype(np.uint8).tobytes() for f in files}
        mine = {decoded(dataset, a).tobytes() for a in dataset.img_to_anns[img["id"]]}
        assert mine == truth


# ---------------------------------------------------------------------- bad inputs
def write(tmp_path, text: str, name: str = "x.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def convert_small(csv, **kwargs):
    return convert_rle_csv(csv, order="column", image_pattern="{id}", height=4, width=5, **kwargs)


def test_duplicate_rows_name_the_lines(tmp_path):
    csv = write(tmp_path, "ImageId,EncodedPixels\na,1 3\nb,2 2\na,1 3\n")
    with pytest.raises(ConversionError, match=r"line 4 repeats line 2 \(id 'a'\)"):
        convert_small(csv)


def test_missing_column_names_it_and_the_columns(tmp_path):
    csv = write(tmp_path, "ImageId,Pixels\na,1 3\n")
    with pytest.raises(ConversionError, match=r"no column 'EncodedPixels' \(--rle-column\); columns found: "
                                              r"\['ImageId', 'Pixels'\]"):
        convert_small(csv)


def test_bom_and_crlf_are_read_and_written_back(tmp_path):
    csv = write(tmp_path, "\ufeffImageId,EncodedPixels\r\na,1 3 10 2\r\nb,\r\n")
    dataset, _ = convert_small(csv)
    assert len(dataset.anns) == 1
    assert export_rle_csv(dataset)[0].encode() == csv.read_bytes()


def test_semicolons_are_detected_or_accepted_with_sep(tmp_path):
    csv = write(tmp_path, "ImageId;EncodedPixels\na;1 3\n")
    with pytest.raises(ConversionError, match=r"semicolon-separated: pass --sep ';'"):
        convert_small(csv)
    dataset, _ = convert_small(csv, sep=";")
    assert len(dataset.anns) == 1
    assert export_rle_csv(dataset)[0] == csv.read_text()


@pytest.mark.parametrize("rle, message", [
    ("1 3 18 5", r"line 3 \(id 'b', image 4x5\): .*token 3 \('5'"),  # past the 20-pixel image
    ("1 3 7", r"line 3 \(id 'b', image 4x5\): odd number of Kaggle RLE tokens .*'7'"),
    ("1 3 x7 2", r"line 3 \(id 'b', image 4x5\): .*token 2 \('x7'"),
])
def test_bad_rle_names_the_line_and_token(tmp_path, rle, message):
    csv = write(tmp_path, f"ImageId,EncodedPixels\na,1 2\nb,{rle}\n")
    with pytest.raises(RLEError, match=message):
        convert_small(csv)


def test_missing_image_names_the_line(tmp_path):
    csv = write(tmp_path, "ImageId,EncodedPixels\na,1 2\n")
    with pytest.raises(ConversionError, match=r"line 2: no image for id 'a'"):
        convert_rle_csv(csv, order="column")


def test_order_is_required_without_a_preset(tmp_path):
    csv = write(tmp_path, "ImageId,EncodedPixels\na,1 2\n")
    with pytest.raises(ConfigError, match="inspect-rle"):
        convert_rle_csv(csv, height=4, width=5)


def test_export_without_provenance_needs_an_order(dsb):
    root, csv = dsb
    dataset, _ = convert_rle_csv(csv, preset="dsb2018")
    del dataset.dataset["info"]["kaggle_csv"]
    with pytest.raises(ConfigError, match="pass order"):
        export_rle_csv(dataset)
    text, _ = export_rle_csv(dataset, order="column")
    assert text.splitlines()[0] == "ImageId,EncodedPixels"
    assert sorted(text.splitlines()[1:]) == sorted(csv.read_text().splitlines()[1:])


# ---------------------------------------------------------------------- inspect-rle, CLI
def test_inspect_rle_prefers_the_true_order(dsb, uw, tmp_path):
    root, csv = dsb
    result = inspect_rle(csv, "00abcdef", tmp_path / "dsb.png", preset="dsb2018")
    assert result.plausible == "column"
    panel = cv2.imread(str(tmp_path / "dsb.png"))
    assert panel.shape[1] > 2 * panel.shape[0] - 100  # two panels side by side
    uw_root, uw_csv, _ = uw
    result = inspect_rle(uw_csv, "case123_day20_slice_0002", tmp_path / "uw.png", preset="uw-madison")
    assert result.plausible == "row"
    assert result.hint.startswith("row-major looks right")


def test_cli_convert_and_export(dsb, capsys):
    root, csv = dsb
    assert main(["convert", "rle-csv", str(csv), "--preset", "dsb2018", "--out", str(root / "c.json")]) == 0
    assert re.search(r"annotations out: nucleus +: 9\n", capsys.readouterr().out)
    assert main(["export", "rle-csv", str(root / "c.json"), "--out", str(root / "c.csv")]) == 0
    assert (root / "c.csv").read_bytes() == csv.read_bytes()
    assert json.loads((root / "c.json").read_text())["info"]["kaggle_csv"]["newline"] == "\r\n"
    assert main(["inspect-rle", str(csv), "--preset", "dsb2018", "--id", "01abcdef",
                 "--out", str(root / "i.png")]) == 0
    assert "hint: column-major looks right" in capsys.readouterr().out


# ---------------------------------------------------------------------- run conversions
@settings(max_examples=100)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_runs_match_the_mask_based_encoders(height, width, seed, parts):
    rng = np.random.default_rng(seed)
    masks = [(rng.random((height, width)) < rng.random()).astype(np.uint8) for _ in range(parts)]
    union = np.bitwise_or.reduce(masks, axis=0)
    runs = [parse_kaggle_rle(kaggle_rle_encode(m, "column")) for m in masks]
    starts0, lengths = merge_runs(np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs]))
    assert runs_to_coco(starts0, lengths, height, width) == coco_rle_encode(union)
    assert runs_to_kaggle(*coco_to_runs(coco_rle_encode(union))) == kaggle_rle_encode(union, "column")
