"""Issue 17 class 6, data half: inputs that would exhaust the stack or the memory.

Deeply nested JSON, image records and ``--height/--width`` claiming gigapixel sizes (refused
before anything is allocated, limit ``COCOCXR_MAX_PIXELS``), and a real out-of-memory
(address space limited with ``RLIMIT_AS``) all end as one clean line, exit 2. Inputs are
the cxr-sample image and mask (../shared/data) with their records' sizes inflated.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import shared

from cococxr.coco import CocoDataset, validate_dataset
from cococxr.errors import CocoFormatError, ConfigError
from cococxr.masks import annotation_to_mask
from cococxr.rle import DEFAULT_MAX_PIXELS, max_pixels

STEM = "00870a9c"


def _cli(argv, cwd: Path, env: dict | None = None, memory: int | None = None) -> subprocess.CompletedProcess:
    def limit():  # runs in the child only
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    full = {**os.environ, "COCOCXR_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cococxr", *argv], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120, preexec_fn=limit)


def _dataset(tmp_path: Path, height: int, width: int) -> Path:
    """The sample image with one polygon lung annotation, its record claiming height x width."""
    sample = shared("cxr-sample")
    (tmp_path / "images").mkdir()
    shutil.copy(sample / "images" / f"{STEM}.png", tmp_path / "images" / "a.png")
    data = {"info": {"image_root": "images"}, "categories": [{"id": 1, "name": "lung"}],
            "images": [{"id": 1, "file_name": "a.png", "height": height, "width": width}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 2500.0,
                             "bbox": [10, 10, 50, 50], "segmentation": [[10, 10, 60, 10, 60, 60, 10, 60]]}]}
    (tmp_path / "coco.json").write_text(json.dumps(data))
    return tmp_path / "coco.json"


def test_default_limit_and_env_override(monkeypatch):
    monkeypatch.delenv("COCOCXR_MAX_PIXELS", raising=False)
    assert max_pixels() == DEFAULT_MAX_PIXELS == 2**28
    monkeypatch.setenv("COCOCXR_MAX_PIXELS", "1000")
    assert max_pixels() == 1000
    for bad in ("abc", "0", "-5", str(2**32)):
        monkeypatch.setenv("COCOCXR_MAX_PIXELS", bad)
        with pytest.raises(ConfigError, match="COCOCXR_MAX_PIXELS"):
            max_pixels()


def test_gigapixel_image_record_is_a_validation_error(tmp_path, monkeypatch):
    monkeypatch.delenv("COCOCXR_MAX_PIXELS", raising=False)
    path = _dataset(tmp_path, 60000, 60000)
    with pytest.raises(CocoFormatError, match=r"images\[0\].height: image 1: height x width = 60000 x 60000 = "
                                              r"3600000000 pixels is over the limit of 268435456"):
        CocoDataset(path)
    monkeypatch.setenv("COCOCXR_MAX_PIXELS", str(2**32 - 1))
    assert not [i for i in validate_dataset(json.loads(path.read_text())) if i.severity == "error"]


def test_rasterising_refuses_before_allocating(monkeypatch):
    monkeypatch.setenv("COCOCXR_MAX_PIXELS", "10000")
    ann = {"segmentation": [[1, 1, 5, 1, 5, 5]]}
    assert annotation_to_mask(ann, 100, 100).shape == (100, 100)
    with pytest.raises(ConfigError, match="101 x 100 = 10100 pixels is over the limit of 10000"):
        annotation_to_mask(ann, 101, 100)


def test_cli_export_masks_of_a_gigapixel_record_is_one_line(tmp_path):
    _dataset(tmp_path, 60000, 60000)
    result = _cli(["export", "masks", "coco.json", "--out", "out"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "over the limit of 268435456" in result.stderr and "COCOCXR_MAX_PIXELS" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_height_width_over_the_limit(tmp_path):
    (tmp_path / "labels.csv").write_text("ImageId,EncodedPixels\na,1 2\n")
    result = _cli(["convert", "rle-csv", "labels.csv", "--order", "row", "--height", "100000", "--width", "100000",
                   "--out", "x.json"], tmp_path, memory=2 * 2**30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--height 100000 --width 100000" in result.stderr and "over the limit" in result.stderr


def test_cli_out_of_memory_is_one_line(tmp_path):
    """Limit raised past the machine's means: numpy's MemoryError becomes one clean line."""
    _dataset(tmp_path, 60000, 60000)
    result = _cli(["export", "masks", "coco.json", "--out", "out"], tmp_path,
                  env={"COCOCXR_MAX_PIXELS": str(2**32 - 1)}, memory=2 * 2**30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("cococxr: error: out of memory")


def test_deeply_nested_json_is_one_line(tmp_path):
    (tmp_path / "deep.json").write_text('{"images": ' + "[" * 200_000 + "]" * 200_000 + "}")
    result = _cli(["validate", "deep.json"], tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "deep.json: JSON nested too deeply" in result.stderr
