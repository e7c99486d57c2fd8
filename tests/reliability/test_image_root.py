"""Class 2 of issue 17: a COCO file's own ``info.image_root`` is confined like its
``file_name`` values, an explicit root is the user's choice, and no report prints contents."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.doctor import diagnose
from cococxr.errors import UnsafePathError
from helpers import SAMPLE, shared

SECRET = "SECRET-TOKEN-42"


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def hostile(folder: Path, root: str, file_name: str = "passwd") -> Path:
    """A COCO file whose own image root points at a system folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coco.json"
    path.write_text(json.dumps({"info": {"image_root": root}, "categories": [{"id": 1, "name": "lung"}],
                                "annotations": [], "images": [{"id": 1, "file_name": file_name,
                                                               "height": 8, "width": 8}]}))
    return path


@pytest.mark.parametrize("root", ["/etc", "../../../../../../../etc", "images/../..", "C:/Windows"])
def test_escaping_root_is_refused_by_every_reader(root, tmp_path, capsys):
    path = hostile(tmp_path / "d", root)
    with pytest.raises(UnsafePathError, match="info.image_root.*--image-root"):
        CocoDataset(path)
    for command in ("validate", "inspect"):
        assert main([command, str(path)]) == 2
        assert "info.image_root" in capsys.readouterr().err
    report = diagnose(path)
    assert report.codes("error") == {"unsafe_image_root"}
    assert "passwd" not in json.dumps(report.to_dict()).replace(str(path), "").split("unsafe_image_root")[0]


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    os.symlink("/etc", tmp_path / "etc")
    with pytest.raises(UnsafePathError, match="resolves to /etc, outside the folder"):
        CocoDataset(hostile(tmp_path, "etc"))


def test_inside_the_folder_and_explicit_roots_are_allowed(tmp_path):
    (tmp_path / "d" / "images").mkdir(parents=True)
    assert CocoDataset(hostile(tmp_path / "d", "images")).image_root == tmp_path / "d" / "images"
    assert CocoDataset(hostile(tmp_path / "d", "./images/.")).image_root.resolve() == tmp_path / "d" / "images"
    explicit = CocoDataset(hostile(tmp_path / "d", "/etc"), image_root=tmp_path)  # the user's own choice
    assert explicit.image_root == tmp_path


def test_doctor_never_prints_file_contents(tmp_path, capsys):
    """A text file posing as an image is reported by name and size, never by its bytes."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE / "images", data / "images")
    victim = sorted((data / "images").glob("*.png"))[0]
    victim.write_text(f"root:{SECRET}:0:0\n")
    coco = {"images": [{"id": 1, "file_name": victim.name, "height": 8, "width": 8}], "annotations": [],
            "categories": [{"id": 1, "name": "lung"}], "info": {"image_root": "images"}}
    (data / "coco.json").write_text(json.dumps(coco))
    for argv in (["doctor", str(data / "coco.json")], ["doctor", str(data / "coco.json"), "--format", "json"]):
        assert main(argv) == 1
        out = capsys.readouterr()
        assert victim.name in out.out and "unreadable" in out.out
        assert SECRET not in out.out + out.err and "root:" not in out.out + out.err


def test_real_converted_file_written_elsewhere_needs_image_root(tmp_path, capsys):
    """The converter says so in its report; the file is read with --image-root."""
    data = shared("cxr-lungs")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for name in sorted(p.name for p in (data / "masks").glob("*.png"))[:3]:
        shutil.copy(data / "images" / name, images / name)
        shutil.copy(data / "masks" / name, masks / name)
    (tmp_path / "out").mkdir()
    assert main(["convert", "masks", str(images), str(masks), "--out", str(tmp_path / "out" / "c.json")]) == 0
    assert f"read it with --image-root {images}" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "out" / "c.json")]) == 2
    assert main(["validate", str(tmp_path / "out" / "c.json"), "--image-root", str(images)]) == 0
