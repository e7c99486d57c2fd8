"""Class 1 of issue 17: an output that is, is inside or contains an input is refused first.

Every command with outputs runs through the real CLI (in this process) on copies of the
embedded sample (and of ../shared/data when present); each refusal names both paths,
exits 2 and leaves every input byte-identical.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from cococxr.cli import main
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.outputs import OutputOverlapError, check_outputs, check_outside_images
from helpers import SAMPLE, shared


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def make_data(tmp_path: Path, source: Path = SAMPLE, n: int = 6) -> Path:
    """``tmp/data/{images,masks}`` with ``n`` masked images of ``source`` and ``coco.json``."""
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    names = sorted(p.name for p in (source / "masks").glob("*.png"))[:n]
    for name in names:
        shutil.copy(source / "images" / name, data / "images" / name)
        shutil.copy(source / "masks" / name, data / "masks" / name)
    convert_mask_folders(data / "images", data / "masks", out=data / "coco.json", class_name="lung")
    return data


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    folder = make_data(tmp_path)
    monkeypatch.chdir(folder)
    return folder


def refused(argv: list[str], capsys, *fragments: str) -> None:
    before = digest(Path.cwd())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cococxr: error:" in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert digest(Path.cwd()) == before, "an input changed"


CASES = {
    "export masks into the images": (["export", "masks", "coco.json", "--out", "images"], ["--out images", "images"]),
    "export masks over the dataset folder": (["export", "masks", "coco.json", "--out", "."], ["contains", "coco.json"]),
    "export rle-csv over its input": (["export", "rle-csv", "coco.json", "--out", "coco.json"], ["is the input"]),
    "doctor report over its input": (["doctor", "coco.json", "--out", "coco.json"], ["--out coco.json", "dataset"]),
    "doctor report over a split": (["doctor", "coco.json", "--splits", "coco.json", "--out", "coco.json"], ["is the input"]),
    "convert masks into the images": (["convert", "masks", "images", "masks", "--out", "images/coco.json"],
                                      ["is inside", "images"]),
    "convert masks over the masks": (["convert", "masks", "images", "masks", "--out", "masks"], ["is the input masks"]),
    "convert folders over its root": (["convert", "folders", ".", "--out", "coco.json"], ["is inside", "root"]),
    "convert metadata over the images": (["convert", "metadata", "coco.json", "--images", "images", "--out",
                                          "coco.json"], ["is the input csv"]),
    "convert rle-csv over its csv": (["convert", "rle-csv", "coco.json", "--order", "row", "--height", "4",
                                      "--width", "4", "--out", "coco.json"], ["is the input csv"]),
    "convert dicom images into its folder": (["convert", "dicom", "images", "--out-images", "images/png",
                                              "--out", "x.json"], ["--out-images images/png", "is inside"]),
    "convert dicom images over its parent": (["convert", "dicom", "images", "--out-images", ".", "--out",
                                              "x.json"], ["contains"]),
    "convert nifti images over its source": (["convert", "nifti", "images", "--out", "x.json", "--out-images",
                                              "images"], ["--out-images images is the input source"]),
    "export nifti over its input": (["export", "nifti", "coco.json", "--out", "."], ["contains"]),
    "merge over an input": (["merge", "coco.json", "coco.json", "--out", "coco.json"], ["is the input inputs"]),
    "split part named like the input": (["split", "coco.json", "--fractions", "coco=0.5,val=0.5", "--out-dir", "."],
                                        ["split 'coco'", "is the input coco"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_output_over_input_is_refused(name, data, capsys):
    argv, fragments = CASES[name]
    refused(argv, capsys, *fragments)


def test_links_are_resolved(data, capsys):
    os.symlink("coco.json", "link.json")
    os.symlink("images", "pictures")
    refused(["merge", "coco.json", "--out", "link.json"], capsys, "link.json", "resolved:")
    refused(["export", "masks", "coco.json", "--out", "pictures"], capsys, "--out pictures", "image root")
    refused(["export", "masks", "coco.json", "--out", "images/../images"], capsys, "image root")


def test_image_root_from_the_file_is_an_input(data, capsys):
    """export masks writes OUT/<file_name>: a folder holding an image of the dataset is refused."""
    (data / "nested").mkdir()
    shutil.copytree(data / "images", data / "nested" / "images")
    main(["convert", "masks", "nested/images", "masks", "--out", "nested.json"])
    capsys.readouterr()
    refused(["export", "masks", "nested.json", "--out", "nested"], capsys, "nested")


def test_legitimate_outputs_still_work(data, capsys):
    assert main(["export", "masks", "coco.json", "--out", "exported"]) == 0
    assert main(["split", "coco.json", "--fractions", "train=0.5,val=0.5", "--by", "id", "--out-dir", "."]) == 0
    assert main(["doctor", "coco.json", "--out", "report.md"]) == 0
    assert main(["merge", "train.json", "val.json", "--out", "merged.json"]) == 0
    assert (data / "exported" / "class_map.json").is_file() and (data / "merged.json").is_file()


def test_check_outputs_relations(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.json").write_text("{}")
    inputs = [("coco", tmp_path / "in" / "a.json"), ("images", tmp_path / "in")]
    for out, relation in ((tmp_path / "in" / "a.json", "is the input coco"), (tmp_path / "in" / "b", "is inside"),
                          (tmp_path, "contains")):
        with pytest.raises(OutputOverlapError, match=relation):
            check_outputs([("--out", out)], inputs)
    check_outputs([("--out", tmp_path / "out"), ("--none", None)], inputs)


def test_check_outside_images_allows_a_sibling_folder(tmp_path):
    names = ["images/a.png", "images/b.png"]
    check_outside_images("--out", tmp_path / "masks", tmp_path, names)
    for out in (tmp_path / "images", tmp_path, tmp_path / "images" / "sub" / ".."):
        with pytest.raises(OutputOverlapError):
            check_outside_images("--out", out, tmp_path, names)


def test_real_data_export_over_images_is_refused(tmp_path, monkeypatch, capsys):
    folder = make_data(tmp_path, shared("cxr-lungs"), n=4)
    monkeypatch.chdir(folder)
    refused(["export", "masks", "coco.json", "--out", "images", "--mode", "per-class"], capsys, "image root")
    refused(["export", "rle-csv", "coco.json", "--out", "masks/.."], capsys, "contains")
