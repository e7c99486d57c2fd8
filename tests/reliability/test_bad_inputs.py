"""Every file of the bad-input corpus fails with its documented error, or works when it must.

The corpus (tests/reliability/bad_inputs/, made by make_corpus.py) lists each case in manifest.json:
the entry point to call, and either the exact error type with message fragments naming
the culprit (file, CSV line, JSON path, annotation id), or ``ok`` with checks.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from cococxr import errors
from cococxr.coco import CocoDataset
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.converters.rle_csv import convert_rle_csv
from cococxr.io import image_size, read_dicom, read_image, read_mask
from cococxr.rle import parse_kaggle_rle
from cococxr.uploads import save_upload

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def _coco(path: Path, kwargs: dict, tmp_path: Path):
    dataset = CocoDataset(path)
    if kwargs.get("read_images"):
        for image_id in dataset.imgs:
            read_image(dataset.image_path(image_id))
    return dataset


def _coco_image_path(path: Path, kwargs: dict, tmp_path: Path):
    return CocoDataset(path, validate=False).image_path(kwargs["image_id"])


def _mask_folders(path: Path, kwargs: dict, tmp_path: Path):
    kwargs = {**kwargs, "images": CORPUS / kwargs["images"], "masks": CORPUS / kwargs["masks"]}
    return convert_mask_folders(out=tmp_path / "out.json", **kwargs)[0]


def _rle_csv(path: Path, kwargs: dict, tmp_path: Path):
    return convert_rle_csv(path, out=tmp_path / "out.json", **kwargs)[0]


def _parse_rle(path: Path, kwargs: dict, tmp_path: Path):
    return parse_kaggle_rle(path.read_text(encoding="ascii"), **kwargs)


def _upload(path: Path, kwargs: dict, tmp_path: Path):
    return save_upload(path.read_bytes(), path.name, tmp_dir=tmp_path)


ENTRIES = {
    "read_image": lambda path, kwargs, tmp: read_image(path, **kwargs),
    "read_mask": lambda path, kwargs, tmp: read_mask(path, **kwargs),
    "read_dicom": lambda path, kwargs, tmp: read_dicom(path, **kwargs).pixels,
    "image_size": lambda path, kwargs, tmp: image_size(path, **kwargs),
    "CocoDataset": _coco,
    "coco_image_path": _coco_image_path,
    "convert_mask_folders": _mask_folders,
    "convert_rle_csv": _rle_csv,
    "parse_kaggle_rle": _parse_rle,
    "save_upload": _upload,
}


def _check_result(case: dict, result) -> None:
    """The checks of an ``ok`` case."""
    if "shape" in case:
        shape = result if isinstance(result, tuple) else np.asarray(result).shape
        assert list(shape) == case["shape"]
    if "dtype" in case:
        assert np.asarray(result).dtype == case["dtype"]
    if "values" in case:
        assert sorted(np.unique(result).tolist()) == case["values"]
    if "runs" in case:
        assert len(result[0]) == case["runs"]
    if "warnings" in case:
        assert sorted({i.code for i in result.issues if i.severity == "warning"}) == case["warnings"]
    if "images" in case:
        assert len(result.imgs) == case["images"]
    if "annotations" in case:
        assert len(result.anns) == case["annotations"]
    if "area" in case:
        assert sum(a["area"] for a in result.anns.values()) == case["area"]


def test_corpus_is_big_small_and_complete():
    files = [p for p in CORPUS.rglob("*") if p.is_file() and "cli" not in p.relative_to(CORPUS).parts[:1]]
    assert len(MANIFEST) >= 40
    assert sum(p.stat().st_size for p in files) < 300 * 1024
    listed = {CORPUS / f for case in MANIFEST for f in case["files"]}
    assert all(p.is_file() for p in listed), "a manifest entry names a missing file"
    unlisted = {p for p in files if p.suffix != ".py" and p.name not in ("manifest.json", "cli_manifest.json", ".gitkeep")} - listed
    assert not unlisted, f"corpus files that no case uses: {sorted(map(str, unlisted))}"


@pytest.mark.parametrize("case", MANIFEST, ids=[c["id"] for c in MANIFEST])
def test_bad_input(case, tmp_path):
    path = CORPUS / case["files"][0]
    call = ENTRIES[case["entry"]]
    if case.get("ok"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            _check_result(case, call(path, case["kwargs"], tmp_path))
        return
    expected = getattr(errors, case["error"])
    with pytest.raises(errors.CococxrError) as info:
        call(path, case["kwargs"], tmp_path)
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for fragment in case["match"]:
        assert fragment in message, f"{fragment!r} not in the message:\n{message}"
    assert not (tmp_path / "out.json").exists(), "a failed conversion must not write its output"


COCO_CASES = [c for c in MANIFEST if c["entry"] == "CocoDataset"]


@pytest.mark.parametrize("mask_check", [[], ["--no-mask-check"]], ids=["masks", "no-masks"])
def test_validate_command_over_the_coco_corpus(mask_check, capsys):
    """``cococxr validate`` exits 0 on the files that must load, non-zero (1 or 2) on the others."""
    from cococxr.cli import build_parser

    parser = build_parser()
    for case in COCO_CASES:
        args = parser.parse_args(["validate", str(CORPUS / case["files"][0]), *mask_check])
        try:
            code = args._handler(args)
        except errors.CococxrError:  # unreadable JSON: the CLI prints it and exits 2
            code = 2
        assert (code == 0) == bool(case.get("ok")), f"{case['id']}: exit code {code}"
    capsys.readouterr()
