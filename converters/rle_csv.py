"""Kaggle run-length-encoded CSVs -> COCO (``cococxr convert rle-csv``).

A Kaggle RLE CSV has one row per mask: an image id, optionally a class, and a string
of 1-indexed ``start length`` pairs over the flattened image, in row-major
(UW-Madison) or column-major (DSB 2018, Airbus, Severstal) pixel order. Empty cells,
``NaN`` and ``-1`` mean "no mask": the image is still recorded.

Semantic output (default) merges every row of one image and class into one
annotation (their union); ``instances=True`` makes one annotation per row (DSB 2018).

What a byte-identical round trip through ``cococxr export rle-csv`` needs is kept in
the COCO file:

- ``info.kaggle_csv``: the columns, which column holds what, the pixel order, the
  spelling of empty cells and the file's conventions (separator, line ending, BOM,
  quoting, final newline);
- on each annotation, ``kaggle_row`` (0-based data row index; for merged rows the
  first one) and ``kaggle_extra`` (the cells of any other columns);
- on each image, ``kaggle_id`` and ``kaggle_empty_rows`` (``[{"kaggle_row", "category",
  "kaggle_extra"}]`` for rows without a mask).

The export reproduces the CSV exactly when every RLE string is canonical (single
spaces, maximal runs) and, in semantic mode, no image has two non-empty rows of one
class; the report counts the rows for which this does not hold.

How a CSV is read (columns, pixel order, presets, where an id's image is) is
:mod:`converters.rle_spec`; this module decodes the rows and numbers the dataset.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cococxr.coco import CocoBuilder
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError, RLEError
from cococxr.rle import merge_runs, runs_to_coco, runs_to_kaggle
from cococxr.rle.arrays import check_size

from .common import ConversionReport, finish, indent_option, info_image_root, out_option, parallel_map, workers_option
from .csv_table import CsvTable, read_csv_table
from .rle_spec import PRESETS, CsvColumns, RleSpec, id_fields, locate_image, resolve_spec

_MAX_LISTED = 5


@dataclass(frozen=True)
class _Row:
    """One CSV row, as the worker needs it."""

    index: int
    line: int
    category: str
    rle: str
    extra: dict


@dataclass(frozen=True)
class _Job:
    """Every row of one image id."""

    kaggle_id: str
    fields: dict
    rows: tuple[_Row, ...]


@dataclass(frozen=True)
class _Settings:
    """What every job shares (picklable)."""

    spec: RleSpec
    csv: str
    root: str
    size: tuple[int, int] | None


def _canonical(starts0: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether the runs are maximal (no two touch): then re-encoding gives the same tokens."""
    return not bool((starts0[1:] == starts0[:-1] + lengths[:-1]).any())


def _segmentation(parts: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int], order: str) -> dict:
    """COCO RLE of the union of Kaggle runs in ``order``."""
    from cococxr.rle import coco_rle_encode

    starts0, lengths = merge_runs(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if order == "column":
        return runs_to_coco(starts0, lengths, *shape)
    edges = np.zeros(shape[0] * shape[1] + 1, np.int8)
    edges[starts0], edges[starts0 + lengths] = 1, -1
    return coco_rle_encode(np.cumsum(edges[:-1], dtype=np.int8).reshape(shape))


def _convert_job(settings: _Settings, job: _Job) -> dict:
    """Locate one image, parse its rows and encode COCO RLE annotations."""
    from cococxr.rle import parse_kaggle_rle

    spec, first = settings.spec, job.rows[0]
    where = f"{settings.csv}: line {first.line}"
    image = locate_image(spec, settings.root, job.kaggle_id, job.fields, where, settings.size)
    shape = check_size(image.height, image.width)
    runs: dict = {}
    empty, noncanonical, merged = [], 0, 0
    for row in job.rows:
        try:
            starts0, lengths = parse_kaggle_rle(row.rle, shape[0] * shape[1])
        except RLEError as exc:
            raise RLEError(f"{settings.csv}: line {row.line} (id {job.kaggle_id!r}"
                           f"{f', class {row.category!r}' if spec.class_column else ''}, image "
                           f"{image.height}x{image.width}): {exc}") from exc
        if starts0.size == 0:
            empty.append(row)
            continue
        noncanonical += not _canonical(starts0, lengths) or row.rle != runs_to_kaggle(starts0, lengths)
        key = row.index if spec.instances else row.category
        if key in runs:
            runs[key][1].append((starts0, lengths))
            merged += 1
        else:
            runs[key] = (row, [(starts0, lengths)])
    annotations = [(row.category, row.index, row.extra, _segmentation(parts, shape, spec.order))
                   for row, parts in runs.values()]
    if not spec.instances:
        order = spec.categories or ()
        annotations.sort(key=lambda a: (order.index(a[0]) if a[0] in order else len(order), a[0]))
    return {"image": image, "annotations": annotations, "empty": empty,
            "noncanonical": noncanonical, "merged": merged}


def _check_duplicates(table: CsvTable, cols: CsvColumns) -> None:
    """Raise ConversionError naming the lines of identical (id, class, RLE) rows."""
    first: dict[tuple, int] = {}
    pairs = []
    for row, line in zip(table.rows, table.lines):
        key = (row[cols.id], row[cols.cls] if cols.cls is not None else None, row[cols.rle].strip())
        if key in first:
            pairs.append(f"line {line} repeats line {first[key]} (id {key[0]!r}"
                         f"{'' if key[1] is None else f', class {key[1]!r}'})")
        else:
            first[key] = line
    if pairs:
        more = f" and {len(pairs) - _MAX_LISTED} more" if len(pairs) > _MAX_LISTED else ""
        raise ConversionError(f"{table.path}: {len(pairs)} duplicate row(s): {'; '.join(pairs[:_MAX_LISTED])}{more}")


def _jobs(table: CsvTable, cols: CsvColumns, spec: RleSpec) -> tuple[list[_Job], list[str]]:
    """Group rows by image id (first appearance order); return the jobs and the class names."""
    groups: dict[str, list[_Row]] = {}
    fields: dict[str, dict] = {}
    classes = set()
    for index, (row, line) in enumerate(zip(table.rows, table.lines)):
        where = f"{table.path}: line {line}"
        kaggle_id = row[cols.id].strip()
        if not kaggle_id:
            raise ConversionError(f"{where}: empty {spec.id_column!r} cell")
        category = row[cols.cls].strip() if cols.cls is not None else spec.category
        if not category:
            raise ConversionError(f"{where}: empty {spec.class_column!r} cell (id {kaggle_id!r})")
        if spec.categories is not None and category not in spec.categories:
            raise ConversionError(f"{where}: class {category!r} is not one of {list(spec.categories)}")
        classes.add(category)
        if kaggle_id not in fields:
            fields[kaggle_id] = id_fields(spec, kaggle_id, where)
        extra = {table.columns[i]: row[i] for i in cols.extra}
        groups.setdefault(kaggle_id, []).append(_Row(index, line, category, row[cols.rle], extra))
    names = list(spec.categories) if spec.categories is not None else sorted(classes)
    return [_Job(k, fields[k], tuple(rows)) for k, rows in groups.items()], names


def _empty_spelling(results: list[dict], report: ConversionReport) -> str:
    """How empty masks are written in the CSV ("" unless the file uses e.g. -1 or NaN)."""
    spellings = list(dict.fromkeys(row.rle for result in results for row in result["empty"]))
    if len(spellings) > 1:
        report.notes.append(f"empty masks are written {spellings} in the CSV; the export writes {spellings[0]!r}")
    return spellings[0] if spellings else ""


@dataclass
class RleCsvOptions:
    """The options of :func:`convert_rle_csv` and ``cococxr convert rle-csv``.

    ``preset`` (``"uw-madison"``, ``"dsb2018"``; see :data:`PRESETS`) fills the reading
    options left None; ``class_column=""`` means no class column; ``height`` and
    ``width`` give every image's size (then images need not exist).
    """

    csv: PathArg = option(None, "Kaggle RLE CSV (UTF-8, optional BOM, LF or CRLF)", positional=True, required=True)
    images: PathArg | None = option(None, "image folder the --image-pattern is relative to (default: the CSV's folder)")
    preset: str | None = option(None, "uw-madison: id,class,segmentation, row-major, train/caseN/caseN_dayD/scans/"
                                      "slice_S_W_H_SW_SH.png; dsb2018: ImageId,EncodedPixels, column-major, one "
                                      "instance per row, stage1_train/{id}/images/{id}.png", choices=tuple(sorted(PRESETS)))
    id_column: str | None = option(None, "image id column (default: ImageId)")
    class_column: str | None = option(None, "class column (default: none; '' for none)")
    rle_column: str | None = option(None, "RLE column (default: EncodedPixels)")
    order: str | None = option(None, "pixel order: row-major (UW-Madison) or column-major (DSB 2018, Airbus, "
                                     "Severstal); required without --preset (see `cococxr inspect-rle`)",
                               choices=("row", "column"))
    instances: bool | None = option(None, "one annotation per row (default: one per image and class, rows merged)")
    image_pattern: str | None = option(None, "image path under --images for an id; {id} and --id-regex groups "
                                             "are filled in, * globbed (default: {id}.png)")
    id_regex: str | None = option(None, "regex the id must match; named groups fill the pattern and are kept "
                                        "on the image record, e.g. 'case(?P<case>\\d+)_.*'")
    height: int | None = option(None, "image height for every id (with --width; no image reading)")
    width: int | None = option(None, "image width for every id")
    category: str | None = option(None, "class name when there is no class column (default: foreground)")
    supercategory: str | None = option(None, "supercategory of the classes (default: anatomy)")
    sep: str = option(",", "CSV separator (default: ',')")
    out: PathArg | None = out_option()
    workers: int = workers_option()
    indent: int | None = indent_option()


def convert_rle_csv(csv: PathArg, images: PathArg | None = None, out: PathArg | None = None, **options):
    """Convert a Kaggle RLE CSV into a COCO dataset.

    Args:
        csv: the CSV file.
        images: image folder the pattern is relative to (default: the CSV's folder).
        out: COCO JSON to write atomically (nothing is written when None).
        **options: the other fields of :class:`RleCsvOptions` (``preset``, ``order``,
            ``instances``, ``image_pattern``, column names, ...).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: missing column, duplicate rows, missing image, bad id or class.
        RLEError: a malformed RLE or one running past its image (names the line and token).
        ConfigError: bad or unknown options.
    """
    opts = load_options(RleCsvOptions, csv=csv, images=images, out=out, **options)
    spec = resolve_spec(opts.preset, id_column=opts.id_column, class_column=opts.class_column, rle_column=opts.rle_column,
                        order=opts.order, instances=opts.instances, image_pattern=opts.image_pattern, id_regex=opts.id_regex,
                        category=opts.category, supercategory=opts.supercategory)
    height, width = opts.height, opts.width
    if (height is None) != (width is None) or (height is not None and min(height, width) < 1):
        raise ConfigError(f"give both --height and --width as positive integers (got {height!r}, {width!r})")
    if height is not None:
        try:
            check_size(height, width)  # refused before anything is allocated (COCOCXR_MAX_PIXELS)
        except ConfigError as exc:
            raise ConfigError(f"--height {height} --width {width}: {exc}") from None
    csv = Path(opts.csv)
    root = Path(opts.images) if opts.images is not None else csv.parent
    table = read_csv_table(csv, opts.sep)
    cols = CsvColumns.find(table, spec)
    _check_duplicates(table, cols)
    jobs, names = _jobs(table, cols, spec)
    report = ConversionReport(source=str(csv))
    report.add("rows in", len(table.rows))
    report.add("images in", len(jobs))
    settings = _Settings(spec, str(csv), str(root), (height, width) if height is not None else None)
    results = parallel_map(functools.partial(_convert_job, settings), jobs, opts.workers, desc="decoding RLE")

    info = {"description": f"Kaggle RLE CSV {csv.name}", "image_root": info_image_root(root, opts.out),
            "kaggle_csv": {"file": csv.name, "columns": table.columns, "id_column": table.columns[cols.id],
                           "class_column": table.columns[cols.cls] if cols.cls is not None else None,
                           "rle_column": table.columns[cols.rle], "order": spec.order,
                           "instances": spec.instances, "empty_value": _empty_spelling(results, report),
                           "rows": len(table.rows), **table.style.to_dict()}}
    builder = CocoBuilder(info=info)
    cat_ids = {name: builder.add_category(name, spec.supercategory) for name in names}
    per_class = dict.fromkeys(names, 0)
    for job, result in zip(jobs, results):
        image = result["image"]
        record = {"kaggle_id": job.kaggle_id, **image.extras}
        if result["empty"]:
            record["kaggle_empty_rows"] = [_empty_record(row, spec) for row in result["empty"]]
        image_id = builder.add_image(image.file_name, image.height, image.width, **record)
        for name, index, extra, segmentation in result["annotations"]:
            builder.add_annotation(image_id, cat_ids[name], segmentation, kaggle_row=index,
                                   **({"kaggle_extra": extra} if extra else {}))
            per_class[name] += 1
        report.add("empty rows (no mask)", len(result["empty"]))
        report.add("rows merged into another row's annotation", result["merged"])
        report.add("non-canonical RLE rows", result["noncanonical"])
    report.add("images out", len(results))
    for name, n in per_class.items():
        report.add(f"annotations out: {name}", n)
    _round_trip_notes(report, spec)
    return finish(builder, root, opts.out, report, opts.indent)


def _empty_record(row: _Row, spec: RleSpec) -> dict:
    """The ``kaggle_empty_rows`` entry of a row without a mask."""
    record = {"kaggle_row": row.index}
    if spec.class_column:
        record["category"] = row.category
    if row.extra:
        record["kaggle_extra"] = row.extra
    return record


def _round_trip_notes(report: ConversionReport, spec: RleSpec) -> None:
    """Explain the counts that make ``export rle-csv`` differ from the input."""
    if report.counts["rows merged into another row's annotation"]:
        report.notes.append("rows of one image and class were merged (union): export writes one row for them "
                            + ("" if spec.instances else "(use --instances to keep one annotation per row)"))
    if report.counts["non-canonical RLE rows"]:
        report.notes.append("some RLE strings are not canonical (extra spaces or touching runs): export "
                            "writes the canonical form of the same mask")


__all__ = ["PRESETS", "RleCsvOptions", "RleSpec", "convert_rle_csv", "locate_image", "resolve_spec"]
