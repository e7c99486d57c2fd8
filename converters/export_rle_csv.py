"""COCO -> Kaggle RLE CSV (``cococxr export rle-csv``).

Two modes:

- **rows** (default): one row per geometry annotation, plus the rows without a mask
  recorded by ``convert rle-csv`` (``kaggle_empty_rows``). Rows that carry
  ``kaggle_row`` come first, in that order; the others follow sorted by image id
  string, then category, then annotation id. An image with no row at all gets one row
  with an empty RLE (and an empty class cell), so every image is listed. A dataset
  made by ``convert rle-csv`` comes back with its columns, pixel order and file
  conventions (``info.kaggle_csv``), byte for byte.
- **submission**: one row per image and class (the union of that class's
  annotations), with an empty cell when the image has none.

The image id is the image's ``kaggle_id``, else its file name without folders and
extension.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from cococxr.atomic import atomic_write_bytes
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError
from cococxr.rle import coco_to_runs, merge_runs, runs_to_kaggle

from .common import ConversionReport, comma_list, out_option
from .csv_table import CsvStyle, format_csv

_NEWLINES = {"lf": "\n", "crlf": "\r\n"}
_ROLES = ("id", "class", "rle")


def _dataset(coco):
    """A CocoDataset from a path, dict or dataset."""
    from cococxr.coco import CocoDataset

    return coco if isinstance(coco, CocoDataset) else CocoDataset(coco)


def _kaggle_id(img: dict) -> str:
    return str(img.get("kaggle_id") or PurePosixPath(img["file_name"].replace("\\", "/")).stem)


def _encode(anns: list[dict], img: dict, order: str) -> str:
    """The Kaggle RLE of the union of ``anns`` on ``img``.

    Column-major compressed RLEs convert run by run; other cases go through a mask.
    """
    from cococxr.rle import kaggle_rle_encode, segmentation_to_mask

    height, width = img["height"], img["width"]
    segms = [ann["segmentation"] for ann in anns]
    if order == "column" and all(isinstance(s, dict) and isinstance(s.get("counts"), str)
                                 and s.get("size") == [height, width] for s in segms):
        parts = [coco_to_runs(s) for s in segms]
        return runs_to_kaggle(*merge_runs(np.concatenate([p[0] for p in parts]),
                                          np.concatenate([p[1] for p in parts])))
    mask = segmentation_to_mask(segms[0], height, width)
    for segm in segms[1:]:
        mask |= segmentation_to_mask(segm, height, width)
    return kaggle_rle_encode(mask, order)


@dataclass
class ExportRleCsvOptions:
    """The options of :func:`export_rle_csv` and ``cococxr export rle-csv``.

    Column names default to the ones recorded by ``convert rle-csv``, else ``ImageId``,
    ``class`` when there are several classes, ``EncodedPixels``; ``class_column=""``
    drops the class column. ``classes`` (list or comma text) default to every category
    whose supercategory is not ``finding``.
    """

    coco: Any = option(None, "COCO JSON file", positional=True, required=True, role="input")
    out: PathArg | None = out_option("CSV file to write (atomically)")
    order: str | None = option(None, "pixel order (default: the one recorded by `convert rle-csv`; required "
                                     "otherwise)", choices=("row", "column"))
    submission: bool = option(False, "one row per image and class, empty cell for an empty mask (default: one row "
                                     "per annotation, in the original CSV's order when recorded)")
    classes: list[str] | None = option(None, "comma-separated classes to write, in order (default: all but findings)",
                                       parse=comma_list)
    id_column: str | None = option(None, "image id column (default: recorded, else ImageId)")
    class_column: str | None = option(None, "class column ('' for none; default: recorded, else 'class' when "
                                            "there are several classes)")
    rle_column: str | None = option(None, "RLE column (default: recorded, else EncodedPixels)")
    empty_value: str | None = option(None, "cell of an empty mask (default: recorded, else '')")
    newline: str | None = option(None, "line ending (default: recorded, else lf)", choices=tuple(sorted(_NEWLINES)))


def export_rle_csv(coco, out: PathArg | None = None, **options):
    """Write a COCO dataset's masks as a Kaggle RLE CSV.

    Args:
        coco: a COCO JSON path, dict or ``CocoDataset``.
        out: CSV to write atomically (nothing is written when None).
        **options: the other fields of :class:`ExportRleCsvOptions` (``order``,
            ``submission``, ``classes``, column names, ``empty_value``, ``newline``).

    Returns:
        ``(csv_text, ConversionReport)``.

    Raises:
        ConfigError: no pixel order known, unknown class, or a bad or unknown option.
        RLEError, CocoFormatError: an annotation's segmentation cannot be decoded.
    """
    opts = load_options(ExportRleCsvOptions, coco=coco, out=out, **options)
    order, class_column, newline = opts.order, opts.class_column, opts.newline
    dataset = _dataset(opts.coco)
    meta = (dataset.dataset.get("info") or {}).get("kaggle_csv") or {}
    order = order or meta.get("order")
    if order not in ("row", "column"):
        raise ConfigError(f"pixel order {order!r}: pass order 'row' or 'column' (--order); the dataset does not "
                          "record one (it was not made by `convert rle-csv`)")
    cats = _classes(dataset, opts.classes)
    _check_unique_ids(dataset)
    if class_column is None:
        class_column = meta.get("class_column") if meta else ("class" if len(cats) > 1 else None)
    roles = {"id": opts.id_column or meta.get("id_column") or "ImageId", "class": class_column or None,
             "rle": opts.rle_column or meta.get("rle_column") or "EncodedPixels"}
    if roles["class"] is None and len(cats) > 1:
        raise ConfigError(f"{len(cats)} classes ({', '.join(cats.values())}) need a class column: pass "
                          "class_column (--class-column) or choose one class (--classes)")
    columns = _columns(meta, roles)
    empty = meta.get("empty_value", "") if opts.empty_value is None else opts.empty_value
    style = CsvStyle.from_dict(meta)
    if newline is not None:
        style = CsvStyle(**{**style.to_dict(), "newline": _NEWLINES[newline]})
    report = ConversionReport(source=str(dataset.source))
    report.add("images in", len(dataset.imgs))
    make = _submission_rows if opts.submission else _annotation_rows
    records = make(dataset, cats, order, empty, report)
    rows = [[_cell(record, column, roles) for column in columns] for record in records]
    text = format_csv(columns, rows, style)
    report.add("rows out", len(rows))
    if opts.out is not None:
        atomic_write_bytes(opts.out, text.encode("utf-8"))
        report.output = str(opts.out)
    return text, report


def _classes(dataset, names: list[str] | None) -> dict[int, str]:
    """Category id -> name of the classes to export, in order."""
    if names is None:
        return {i: c["name"] for i, c in dataset.cats.items() if c.get("supercategory") != "finding"}
    return {dataset.cat_id(name): name for name in names}


def _columns(meta: dict, roles: dict) -> list[str]:
    """The header: the recorded columns with the roles renamed or dropped, else id[, class], rle."""
    if not meta:
        return [roles[r] for r in _ROLES if roles[r]]
    columns = []
    for column in meta["columns"]:
        role = next((r for r in _ROLES if meta.get(f"{r}_column") == column), None)
        if role is None or roles[role]:
            columns.append(column if role is None else roles[role])
    if roles["class"] and not meta.get("class_column"):
        columns.insert(columns.index(roles["rle"]), roles["class"])
    return columns


def _check_unique_ids(dataset) -> None:
    """Refuse two images that would be written under one ImageId (a re-import would merge them)."""
    first: dict[str, tuple] = {}
    clashes = []
    for image_id, img in dataset.imgs.items():
        key = _kaggle_id(img)
        if key in first:
            clashes.append(f"{key!r}: image {first[key][0]} ({first[key][1]!r}) and image {image_id} "
                           f"({img.get('file_name')!r})")
        first.setdefault(key, (image_id, img.get("file_name")))
    if clashes:
        raise ConversionError(f"{dataset.source}: {len(clashes)} ImageId(s) would be written for two images, and "
                              f"reading the CSV back would merge their masks: {'; '.join(clashes[:5])}"
                              f"{' ...' if len(clashes) > 5 else ''}. The ImageId is the file name's stem (or "
                              f"the image's kaggle_id): give each image a unique kaggle_id, or rename the files")


def _cell(record: dict, column: str, roles: dict) -> str:
    for role in _ROLES:
        if roles[role] == column:
            return record[role]
    return record.get("extra", {}).get(column, "")


def _annotation_rows(dataset, cats: dict[int, str], order: str, empty: str, report: ConversionReport) -> list[dict]:
    """One record per geometry annotation and recorded empty row, in CSV order."""
    keyed = []
    names = {*cats.values(), ""}
    for image_id, img in dataset.imgs.items():
        kaggle_id = _kaggle_id(img)
        anns = [a for a in dataset.img_to_anns.get(image_id, []) if "segmentation" in a and a["category_id"] in cats]
        for ann in anns:
            record = {"id": kaggle_id, "class": cats[ann["category_id"]], "rle": _encode([ann], img, order),
                      "extra": ann.get("kaggle_extra", {})}
            keyed.append((_sort_key(ann, kaggle_id), record))
        report.add("annotations in", len(anns))
        empties = [row for row in img.get("kaggle_empty_rows", []) if row.get("category", "") in names]
        for row in empties:
            record = {"id": kaggle_id, "class": row.get("category", ""), "rle": empty,
                      "extra": row.get("kaggle_extra", {})}
            keyed.append(((0, row["kaggle_row"], "", 0, 0), record))
        report.add("recorded empty rows in", len(empties))
        if not anns and not empties:
            keyed.append(((1, 0, kaggle_id, -1, 0), {"id": kaggle_id, "class": "", "rle": empty}))
            report.add("images without masks (one empty row each)")
    keyed.sort(key=lambda item: item[0])
    return [record for _, record in keyed]


def _sort_key(ann: dict, kaggle_id: str) -> tuple:
    """Recorded CSV rows first, in their order; then by image id, category and annotation id."""
    if isinstance(ann.get("kaggle_row"), int):
        return (0, ann["kaggle_row"], "", 0, 0)
    return (1, 0, kaggle_id, ann["category_id"], ann["id"])


def _submission_rows(dataset, cats: dict[int, str], order: str, empty: str, report: ConversionReport) -> list[dict]:
    """One record per image and class, images sorted by id string."""
    records = []
    for image_id, img in sorted(dataset.imgs.items(), key=lambda item: (_kaggle_id(item[1]), item[0])):
        anns = [a for a in dataset.img_to_anns.get(image_id, []) if "segmentation" in a]
        report.add("annotations in", sum(a["category_id"] in cats for a in anns))
        for cat_id, name in cats.items():
            mine = [a for a in anns if a["category_id"] == cat_id]
            rle = _encode(mine, img, order) if mine else ""
            records.append({"id": _kaggle_id(img), "class": name, "rle": rle or empty})
            report.add("non-empty rows out" if rle else "empty rows out")
    return records


__all__ = ["ExportRleCsvOptions", "export_rle_csv"]
