"""Class 3 of issue 17: one link policy. A file that is a link leaving its root is refused by
validate, inspect, the Sequences and the converters, and reported by doctor."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.doctor import diagnose
from cococxr.errors import UnsafePathError
from cococxr.paths import check_inside
from cococxr.sequences import CocoSegmentationSequence
from helpers import SAMPLE, shared


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def linked(tmp_path: Path, source: Path = SAMPLE) -> Path:
    """``data/{images,masks}`` (3 images of ``source``); the second image is a link to a file outside."""
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    outside.mkdir()
    names = sorted(p.name for p in (source / "masks").glob("*.png"))[:3]
    for name in names:
        shutil.copy(source / "images" / name, data / "images" / name)
        shutil.copy(source / "masks" / name, data / "masks" / name)
    convert_mask_folders(data / "images", data / "masks", out=data / "coco.json", class_name="lung")
    moved = data / "images" / names[1]
    shutil.move(moved, outside / names[1])
    os.symlink(outside / names[1], moved)
    return data


def test_validate_refuses_the_link(tmp_path, capsys):
    data = linked(tmp_path)
    assert main(["validate", str(data / "coco.json")]) == 1
    out = capsys.readouterr().out
    assert "unsafe_link" in out and "outside the root" in out and "1 error(s)" in out


def test_doctor_reports_the_link(tmp_path):
    report = diagnose(linked(tmp_path) / "coco.json")
    assert "unsafe_link" in report.codes("error")
    assert "no problem found" not in report.to_markdown().lower()


def test_inspect_and_sequences_refuse_the_link(tmp_path, capsys):
    data = linked(tmp_path)
    assert main(["inspect", str(data / "coco.json")]) == 2
    assert "outside the image root" in capsys.readouterr().err
    dataset = CocoDataset(data / "coco.json")
    with pytest.raises(UnsafePathError):
        for image_id in dataset.imgs:
            dataset.image_path(image_id)
    sequence = CocoSegmentationSequence(data / "coco.json", ["lung"], batch_size=3, input_size=32, shuffle=False)
    with pytest.raises(UnsafePathError):
        sequence[0]


def test_converters_do_not_follow_the_link(tmp_path, capsys):
    data = linked(tmp_path)
    for argv in (["convert", "masks", str(data / "images"), str(data / "masks"), "--out", str(tmp_path / "x.json")],
                 ["convert", "folders", str(data), "--out", str(tmp_path / "x.json")],
                 ["convert", "dicom", str(data / "images"), "--out-images", str(tmp_path / "png"),
                  "--out", str(tmp_path / "x.json")]):
        assert main(argv) == 2
        assert "is a link to" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "png").exists()


def test_a_link_inside_the_root_is_fine(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    assert check_inside(tmp_path, tmp_path / "b.png") == tmp_path / "a.png"
    with pytest.raises(UnsafePathError, match="is a link to /etc/passwd"):
        os.symlink("/etc/passwd", tmp_path / "c.png")
        check_inside(tmp_path, tmp_path / "c.png")


def test_real_data_link_is_reported(tmp_path):
    data = linked(tmp_path, shared("cxr-lungs"))
    issues = CocoDataset(data / "coco.json").link_issues()
    assert [i.code for i in issues] == ["unsafe_link"] and issues[0].image_id == 2
    assert json.loads((data / "coco.json").read_text())["images"][1]["id"] == 2
