"""Shared plumbing of the volume converters (nifti, rtstruct, dicom-seg): slices -> COCO.

A converter turns each case into :class:`SliceResult` s (one per slice image written
to a :class:`~cococxr.volumes.staging.StagedFolder`, with its record keys and its
annotations as ``(label value, geometry)``, see :func:`mask_geometry`), then :func:`assemble_volumes` numbers images,
categories and annotations. Categories carry ``label_value`` (the voxel value), so
``export nifti`` can rebuild the label volumes.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.config import option
from cococxr.errors import ConversionError
from cococxr.rle import coco_rle_encode

from .common import ConversionReport

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class SliceResult:
    """One slice image: its file name, size, extra record keys and ``(value, geometry)`` annotations."""

    file_name: str
    height: int
    width: int
    record: dict
    annotations: list[tuple[int, dict]] = field(default_factory=list)


@dataclass
class CaseResult:
    """What one case produced: its slices and its counts / notes for the report."""

    case_id: str
    slices: list[SliceResult] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Category:
    """A category to write: voxel value, name, supercategory and extra keys."""

    value: int
    name: str
    supercategory: str = "anatomy"
    extra: tuple[tuple[str, object], ...] = ()



# The output options every volume converter shares, in their --help order.
def out_json_option():
    """``--out/-o``: the COCO JSON written (required, also from Python)."""
    return option(None, "COCO JSON file to write (atomically)", flags=("--out", "-o"), required=True, role="output")


def out_images_option():
    """``--out-images``: the folder of slice PNGs."""
    return option(None, "folder for the slice PNGs, <case_id>/<axis>_<index>.png", required=True, role="output")


def series_folder_option(what: str):
    """The positional folder searched for image series and ``what`` files."""
    return option(None, f"folder searched recursively for the image series and {what} files", positional=True,
                  required=True)


def safe_case_id(text: str) -> str:
    """``text`` with characters other than letters, digits, ``._-`` replaced by ``_`` (for file names)."""
    cleaned = _UNSAFE.sub("_", str(text)).strip("._") or "case"
    return cleaned


def slice_file_name(case_id: str, axis: str, index: int, num_slices: int) -> str:
    """``<case_id>/<axis>_<index>.png`` with the index zero-padded to at least 4 digits."""
    return f"{case_id}/{axis}_{index:0{max(4, len(str(num_slices - 1)))}d}.png"


def mask_geometry(mask: np.ndarray) -> dict:
    """``segmentation`` (compressed RLE, :func:`cococxr.rle.coco_rle_encode`), ``area`` and ``bbox`` of a mask.

    ``area`` and ``bbox`` are pycocotools' (as :meth:`CocoBuilder.add_annotation` computes
    them), taken here in the worker from the RLE just made, so assembling does not decode
    and check thousands of fresh RLEs again.
    """
    segmentation = coco_rle_encode(mask)
    raw = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return {"segmentation": segmentation, "area": int(mask_utils.area(raw)),
            "bbox": [float(v) for v in mask_utils.toBbox(raw)]}


def label_slice_annotations(labels: np.ndarray, skip: frozenset = frozenset({0})) -> list[tuple[int, dict]]:
    """``(value, geometry)`` for every value of a 2-D label slice, in value order (0 skipped)."""
    if labels.dtype == np.uint8:
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    else:
        present = np.unique(labels)
    return [(int(v), mask_geometry(labels == v)) for v in present if int(v) not in skip]


def write_slice_png(staged_root: str, file_name: str, pixels: np.ndarray) -> None:
    """Write one grayscale slice PNG (8 or 16 bit) under the staging folder.

    A plain write, not :func:`cococxr.io.write_png`'s temporary file + fsync per image: the
    staging folder already makes the whole set appear at once, and an fsync per slice was
    a third of the conversion time.
    """
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.ndim != 2:
        raise ConversionError(f"{file_name}: slice of {pixels.dtype} {pixels.shape}; expected 2-D uint8/uint16")
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise RuntimeError(f"{file_name}: OpenCV failed to encode the PNG")
    path = Path(staged_root) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.tobytes())


def assemble_volumes(cases: list[CaseResult], categories: list[Category], report: ConversionReport, *,
                     info: dict, image_root: str | os.PathLike) -> CocoDataset:
    """Number the cases' slices into a COCO dataset and count them in ``report``.

    Raises:
        ConversionError: an annotation value with no category (a converter bug guard),
            or two cases with the same id.
    """
    builder = CocoBuilder(info=info)
    by_value: dict[int, int] = {}
    for category in categories:
        cat_id = builder.add_category(category.name, supercategory=category.supercategory)
        builder.categories[cat_id - 1].update({"label_value": int(category.value), **dict(category.extra)})
        by_value[category.value] = cat_id
    per_category = Counter()
    seen: set[str] = set()
    for key in ("cases out", "images out", "images without annotations"):
        report.add(key, 0)
    for case in cases:
        if case.case_id in seen:
            raise ConversionError(f"two cases are both called {case.case_id!r}; case ids must be unique")
        seen.add(case.case_id)
        report.add("cases out")
        for item in case.slices:
            image_id = builder.add_image(item.file_name, item.height, item.width, **item.record)
            report.add("images out")
            if not item.annotations:
                report.add("images without annotations")
            for value, geometry in item.annotations:
                if value not in by_value:
                    raise ConversionError(f"case {case.case_id!r}: value {value} has no category")
                # builder.add_annotation would decode and check each fresh RLE again (see mask_geometry)
                builder.annotations.append({"id": len(builder.annotations) + 1, "image_id": image_id,
                                            "category_id": by_value[value], **geometry, "iscrowd": 0})
                per_category[value] += 1
        for key, n in case.counts.items():
            report.add(key, n)
        report.notes += case.notes
    for category in categories:
        report.add(f"annotations out: {category.name}", per_category[category.value])
    dataset = builder.build(image_root, validate=False)  # every record was checked as it was added
    dataset.validated = True
    return dataset


__all__ = ["CaseResult", "Category", "SliceResult", "assemble_volumes", "label_slice_annotations", "out_images_option",
           "out_json_option", "series_folder_option",
           "mask_geometry",
           "safe_case_id",
           "slice_file_name", "write_slice_png"]
