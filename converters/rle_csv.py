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
"""
from __future__ import annotations

import argparse
import functools
import glob
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cococxr.errors import ConfigError, ConversionError, RLEError
from cococxr.paths import check_relative_name
from cococxr.rle import merge_runs, runs_to_coco, runs_to_kaggle

from .common import ConversionReport, add_common_arguments, image_root_hint, parallel_map
from .csv_table import CsvTable, read_csv_table

#: Image record keys a ``--id-regex`` group may not use.
RESERVED_IMAGE_KEYS = frozenset({"id", "file_name", "height", "width", "kaggle_id", "kaggle_empty_rows"})
_UW_FILE = re.compile(r"slice_(\d+)_(\d+)_(\d+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)\.png")
_MAX_LISTED = 5


@dataclass(frozen=True)
class RleSpec:
    """How to read one Kaggle RLE CSV.

    Attributes:
        id_column, rle_column: the image id and RLE columns.
        class_column: the class column, or None (then every mask is ``category``).
        order: ``"row"`` or ``"column"`` pixel order.
        instances: one annotation per row instead of one per image and class.
        image_pattern: image path under the image folder; ``{id}`` and the named groups
            of ``id_regex`` are filled in; ``*`` and ``?`` are globbed (one match needed).
        id_regex: regex the whole id must match; its named groups are stored on the
            image record (as ints when they are digits).
        categories: the classes in category order (None: the sorted class values).
        category: the class name when there is no class column.
        supercategory: supercategory of the classes.
        size_from_name: read height, width and pixel spacing from UW-Madison file names
            (``slice_0001_266_266_1.50_1.50.png`` = slice, width, height, spacing w, h).
    """

    id_column: str = "ImageId"
    rle_column: str = "EncodedPixels"
    class_column: str | None = None
    order: str | None = None
    instances: bool = False
    image_pattern: str = "{id}.png"
    id_regex: str | None = None
    categories: tuple[str, ...] | None = None
    category: str = "foreground"
    supercategory: str = "anatomy"
    size_from_name: bool = False


PRESETS: dict[str, RleSpec] = {
    "uw-madison": RleSpec(
        id_column="id", class_column="class", rle_column="segmentation", order="row",
        image_pattern="train/case{case}/case{case}_day{day}/scans/slice_{slice}_*.png",
        id_regex=r"case(?P<case>\d+)_day(?P<day>\d+)_slice_(?P<slice>\d+)",
        categories=("large_bowel", "small_bowel", "stomach"), size_from_name=True),
    "dsb2018": RleSpec(
        id_column="ImageId", rle_column="EncodedPixels", order="column", instances=True,
        image_pattern="stage1_train/{id}/images/{id}.png", category="nucleus", supercategory="cell"),
}


def resolve_spec(preset: str | None = None, **overrides) -> RleSpec:
    """A preset (or the generic defaults) with the given non-None fields replaced.

    Raises:
        ConfigError: unknown preset or field, missing or bad ``order``, bad ``id_regex``,
            or a pattern placeholder that neither ``id`` nor a regex group provides.
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = PRESETS[preset] if preset else RleSpec()
    try:
        spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    except TypeError as exc:
        raise ConfigError(f"unknown RLE CSV option: {exc}") from exc
    if spec.class_column == "":
        spec = replace(spec, class_column=None)
    if spec.order not in ("row", "column"):
        raise ConfigError(f"pixel order {spec.order!r}: pass order 'row' or 'column' (--order); "
                          "`cococxr inspect-rle CSV --id ID` renders both to show which one the CSV uses")
    groups = _regex_groups(spec.id_regex)
    try:
        spec.image_pattern.format(id="x", **dict.fromkeys(groups, "1"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"image pattern {spec.image_pattern!r}: bad placeholder {exc}; available: "
                          f"{{id}}{''.join(f', {{{g}}}' for g in groups)}") from exc
    return spec


def _regex_groups(id_regex: str | None) -> list[str]:
    """Named groups of the id regex (validated)."""
    if id_regex is None:
        return []
    try:
        groups = list(re.compile(id_regex).groupindex)
    except re.error as exc:
        raise ConfigError(f"--id-regex {id_regex!r} is not a valid regular expression: {exc}") from exc
    reserved = sorted(set(groups) & RESERVED_IMAGE_KEYS)
    if reserved:
        raise ConfigError(f"--id-regex groups {reserved} are reserved image keys; rename them")
    return groups


@dataclass(frozen=True)
class CsvColumns:
    """Indexes of the spec's columns in one table (``cls`` is None without a class column)."""

    id: int
    rle: int
    cls: int | None
    extra: tuple[int, ...]

    @classmethod
    def find(cls, table: CsvTable, spec: RleSpec) -> CsvColumns:
        """Look the columns up; ConversionError names a missing one and the columns found."""
        ids = table.column_index(spec.id_column, "--id-column")
        rle = table.column_index(spec.rle_column, "--rle-column")
        klass = table.column_index(spec.class_column, "--class-column") if spec.class_column else None
        used = {ids, rle, klass}
        return cls(ids, rle, klass, tuple(i for i in range(len(table.columns)) if i not in used))


def id_fields(spec: RleSpec, kaggle_id: str, where: str) -> dict[str, str]:
    """The named groups of ``spec.id_regex`` in ``kaggle_id`` (empty without a regex)."""
    if spec.id_regex is None:
        return {}
    match = re.fullmatch(spec.id_regex, kaggle_id)
    if match is None:
        raise ConversionError(f"{where}: id {kaggle_id!r} does not match --id-regex {spec.id_regex!r}")
    return match.groupdict()


@dataclass(frozen=True)
class ImageLocation:
    """Where an id's image is and how big it is."""

    file_name: str
    height: int
    width: int
    extras: dict


def locate_image(spec: RleSpec, root: str | os.PathLike, kaggle_id: str, fields: dict[str, str],
                 where: str, size: tuple[int, int] | None = None) -> ImageLocation:
    """Find an id's image under ``root`` and its size.

    Args:
        spec: the reading spec (pattern, ``size_from_name``).
        root: the image folder.
        kaggle_id: the id; ``fields``: its regex groups.
        where: prefix for messages (CSV file and line).
        size: explicit ``(height, width)``; then the image file need not exist (unless the
            pattern has wildcards).

    Raises:
        ConversionError: no image (or several) matches, or the file name's size disagrees
            with the image.
        ImageReadError: the image header cannot be read.
    """
    from cococxr.io import image_size

    root = Path(root)
    name = spec.image_pattern.format(id=kaggle_id, **fields)
    check_relative_name(name, f"{where}: image path for id {kaggle_id!r}")
    if glob.has_magic(spec.image_pattern):
        escaped = spec.image_pattern.format(id=glob.escape(kaggle_id), **{k: glob.escape(v) for k, v in fields.items()})
        matches = sorted(p.relative_to(root).as_posix() for p in root.glob(escaped) if p.is_file())
        if len(matches) != 1:
            found = "nothing matches" if not matches else f"{len(matches)} files match ({matches[:_MAX_LISTED]})"
            raise ConversionError(f"{where}: no unique image for id {kaggle_id!r}: {found} {root / name} "
                                  f"(--image-pattern {spec.image_pattern!r}, --images {root})")
        name = matches[0]
    elif size is None and not (root / name).is_file():
        raise ConversionError(f"{where}: no image for id {kaggle_id!r}: {root / name} does not exist "
                              f"(--image-pattern {spec.image_pattern!r}, --images {root}; or give --height "
                              "and --width)")
    extras = {k: int(v) if v.isdigit() else v for k, v in fields.items()}
    if size is not None:
        return ImageLocation(name, size[0], size[1], extras)
    height, width = image_size(root / name)
    if spec.size_from_name:
        extras.update(_uw_file_facts(root / name, height, width))
    return ImageLocation(name, height, width, extras)


def _uw_file_facts(path: Path, height: int, width: int) -> dict:
    """Pixel spacing ``[row, col]`` from a UW-Madison file name, checked against the image size."""
    match = _UW_FILE.fullmatch(path.name)
    if match is None:
        raise ConversionError(f"{path}: not a UW-Madison slice file name "
                              "(slice_<n>_<width>_<height>_<spacing w>_<spacing h>.png)")
    name_width, name_height = int(match.group(2)), int(match.group(3))
    if (name_height, name_width) != (height, width):
        raise ConversionError(f"{path}: the file name gives width x height {name_width}x{name_height} but the "
                              f"image is {width}x{height}")
    return {"pixel_spacing": [float(match.group(5)), float(match.group(4))]}


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
    shape = (image.height, image.width)
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


def convert_rle_csv(csv: str | os.PathLike, images: str | os.PathLike | None = None,
                    out: str | os.PathLike | None = None, *, preset: str | None = None,
                    id_column: str | None = None, class_column: str | None = None, rle_column: str | None = None,
                    order: str | None = None, instances: bool | None = None, image_pattern: str | None = None,
                    id_regex: str | None = None, height: int | None = None, width: int | None = None,
                    category: str | None = None, supercategory: str | None = None, sep: str = ",",
                    workers: int = 1, indent: int | None = None):
    """Convert a Kaggle RLE CSV into a COCO dataset.

    Args:
        csv: the CSV file.
        images: image folder the pattern is relative to (default: the CSV's folder).
        out: COCO JSON to write atomically (nothing is written when None).
        preset: ``"uw-madison"`` or ``"dsb2018"`` (see :data:`PRESETS`); other arguments
            override it.
        id_column, class_column, rle_column: column names (``class_column=""`` for none).
        order: ``"row"`` or ``"column"`` pixel order (required without a preset).
        instances: one annotation per row (default: one per image and class).
        image_pattern: image path for an id, e.g. ``"{id}.png"`` or ``"{id}/images/{id}.png"``.
        id_regex: regex with named groups for the pattern and the image record.
        height, width: the image size for every id (then images need not exist).
        category: class name when there is no class column.
        supercategory: supercategory of the classes.
        sep: CSV separator.
        workers: worker processes; the output is identical for any value.
        indent: JSON indent.

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: missing column, duplicate rows, missing image, bad id or class.
        RLEError: a malformed RLE or one running past its image (names the line and token).
        ConfigError: bad options.
    """
    from cococxr.coco import CocoBuilder

    spec = resolve_spec(preset, id_column=id_column, class_column=class_column, rle_column=rle_column,
                        order=order, instances=instances, image_pattern=image_pattern, id_regex=id_regex,
                        category=category, supercategory=supercategory)
    if (height is None) != (width is None) or (height is not None and min(height, width) < 1):
        raise ConfigError(f"give both --height and --width as positive integers (got {height!r}, {width!r})")
    csv = Path(csv)
    root = Path(images) if images is not None else csv.parent
    table = read_csv_table(csv, sep)
    cols = CsvColumns.find(table, spec)
    _check_duplicates(table, cols)
    jobs, names = _jobs(table, cols, spec)
    report = ConversionReport(source=str(csv))
    report.add("rows in", len(table.rows))
    report.add("images in", len(jobs))
    settings = _Settings(spec, str(csv), str(root), (height, width) if height is not None else None)
    results = parallel_map(functools.partial(_convert_job, settings), jobs, workers, desc="decoding RLE")

    image_root = image_root_hint(root, out) if out is not None else str(root.resolve())
    info = {"description": f"Kaggle RLE CSV {csv.name}", "image_root": image_root,
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
    dataset = builder.build(root)
    if out is not None:
        dataset.write(out, indent=indent)
        report.output = str(out)
    return dataset, report


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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr convert rle-csv``."""
    parser.add_argument("csv", help="Kaggle RLE CSV (UTF-8, optional BOM, LF or CRLF)")
    parser.add_argument("--images", help="image folder the --image-pattern is relative to (default: the CSV's folder)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="uw-madison: id,class,segmentation, row-major, train/caseN/caseN_dayD/scans/"
                             "slice_S_W_H_SW_SH.png; dsb2018: ImageId,EncodedPixels, column-major, one "
                             "instance per row, stage1_train/{id}/images/{id}.png")
    parser.add_argument("--id-column", help="image id column (default: ImageId)")
    parser.add_argument("--class-column", help="class column (default: none; '' for none)")
    parser.add_argument("--rle-column", help="RLE column (default: EncodedPixels)")
    parser.add_argument("--order", choices=("row", "column"),
                        help="pixel order: row-major (UW-Madison) or column-major (DSB 2018, Airbus, Severstal); "
                             "required without --preset (see `cococxr inspect-rle`)")
    parser.add_argument("--instances", action=argparse.BooleanOptionalAction, default=None,
                        help="one annotation per row (default: one per image and class, rows merged)")
    parser.add_argument("--image-pattern", help="image path under --images for an id; {id} and --id-regex groups "
                                                "are filled in, * globbed (default: {id}.png)")
    parser.add_argument("--id-regex", help="regex the id must match; named groups fill the pattern and are kept "
                                           "on the image record, e.g. 'case(?P<case>\\d+)_.*'")
    parser.add_argument("--height", type=int, help="image height for every id (with --width; no image reading)")
    parser.add_argument("--width", type=int, help="image width for every id")
    parser.add_argument("--category", help="class name when there is no class column (default: foreground)")
    parser.add_argument("--supercategory", help="supercategory of the classes (default: anatomy)")
    parser.add_argument("--sep", default=",", help="CSV separator (default: ',')")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr convert rle-csv``."""
    _, report = convert_rle_csv(
        args.csv, args.images, args.out, preset=args.preset, id_column=args.id_column,
        class_column=args.class_column, rle_column=args.rle_column, order=args.order, instances=args.instances,
        image_pattern=args.image_pattern, id_regex=args.id_regex, height=args.height, width=args.width,
        category=args.category, supercategory=args.supercategory, sep=args.sep, workers=args.workers,
        indent=args.indent)
    print(report.format())
    return 0


__all__ = ["PRESETS", "RleSpec", "convert_rle_csv", "locate_image", "resolve_spec"]
