"""Metadata tables -> COCO image-level labels (``cococxr convert metadata``).

One CSV row per image (e.g. the ieee8023 COVID-19 chest X-ray ``metadata.csv``):
a file name column, a label column (``finding``) whose values become image-level
label annotations (categories with supercategory ``finding``), row filters
(``modality=X-ray``, ``view in PA,AP``; see :mod:`cococxr.converters.filters`) and
columns kept on the image record (``patientid:patient_id,view``; cells kept as text,
empty cells left out). The image size is read from each image's header.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.paths import safe_join

from .common import ConversionReport, add_common_arguments, image_root_hint, parallel_map
from .csv_table import CsvTable, read_csv_table
from .filters import select_rows
from .image_metadata import RESERVED_KEYS, parse_keep


def _image_size(job: tuple[str, int, str]) -> tuple[int, int]:
    """``(height, width)`` of one image; errors name the CSV line."""
    from cococxr.io import image_size

    path, line, csv = job
    try:
        return image_size(path)
    except ImageReadError as exc:
        raise ImageReadError(f"{csv}: line {line}: {exc}") from exc


def _labels(cell: str, split: str | None) -> list[str]:
    """The labels of one cell (several when ``split`` is given), without blanks or repeats."""
    parts = cell.split(split) if split else [cell]
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _kept_columns(table: CsvTable, keep: str | list | None, file_column: str) -> list[tuple[int, str]]:
    """``(column index, image key)`` pairs; default every column but the file name's."""
    pairs = parse_keep(keep) if isinstance(keep, str) or keep is None else list(keep)
    if pairs is None:
        pairs = [(c, c) for c in table.columns if c != file_column]
    reserved = sorted({key for _, key in pairs} & RESERVED_KEYS)
    if reserved:
        raise ConfigError(f"--keep: image keys {reserved} are reserved; rename them (column:new_key)")
    return [(table.column_index(column, "--keep"), key) for column, key in pairs]


def convert_metadata(csv: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike | None = None, *,
                     file_column: str = "filename", label_column: str | None = "finding",
                     label_split: str | None = None, supercategory: str = "finding", filters=(),
                     keep: str | list | None = None, skip_missing: bool = False, sep: str = ",",
                     workers: int = 1, indent: int | None = None):
    """Convert a metadata CSV into COCO image records with image-level labels.

    Args:
        csv: the metadata CSV (UTF-8, optional BOM, LF or CRLF).
        images: folder the file names are relative to.
        out: COCO JSON to write atomically (nothing is written when None).
        file_column: column holding the image file name.
        label_column: column whose values become labels (None: no labels).
        label_split: split a label cell on this text into several labels (e.g. ``","``).
        supercategory: supercategory of the label categories.
        filters: ``column op value`` strings (or parsed filters), all must hold.
        keep: ``"col:key,col2"`` or ``[(column, key)]`` columns kept on the image record
            (default: every column but the file name column).
        skip_missing: skip rows whose image file does not exist (counted) instead of failing.
        sep: CSV separator.
        workers: worker processes reading image headers; the output is identical for any value.
        indent: JSON indent.

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: unknown column, empty or repeated file name, missing image.
        ConfigError: a malformed filter (names the position) or a reserved ``keep`` key.
        ImageReadError: an image header cannot be read (names the line).
    """
    from cococxr.coco import CocoBuilder

    csv, images = Path(csv), Path(images)
    table = read_csv_table(csv, sep)
    file_index = table.column_index(file_column, "--file-column")
    label_index = table.column_index(label_column, "--label-column") if label_column else None
    kept = _kept_columns(table, keep, table.columns[file_index])
    selected = select_rows(table, filters)
    report = ConversionReport(source=str(csv))
    report.add("rows in", len(table.rows))
    report.add("rows filtered out", selected.count(False))
    rows, seen = [], {}
    for row, line, wanted in zip(table.rows, table.lines, selected):
        if not wanted:
            continue
        name = row[file_index].strip().replace("\\", "/")
        if not name:
            raise ConversionError(f"{csv}: line {line}: empty {file_column!r} cell")
        if name in seen:
            raise ConversionError(f"{csv}: line {line}: file {name!r} repeats line {seen[name]}")
        seen[name] = line
        path = safe_join(images, name, f"{csv}: line {line}: {file_column}")
        if not path.is_file():
            if skip_missing:
                report.add("rows skipped: image missing")
                continue
            raise ConversionError(f"{csv}: line {line}: image {path} does not exist "
                                  "(check --images and --file-column, or pass --skip-missing)")
        rows.append((row, line, name, str(path)))
    sizes = parallel_map(_image_size, [(path, line, str(csv)) for _, line, _, path in rows], workers,
                         desc="reading image headers")
    labelled = [_labels(row[label_index], label_split) if label_index is not None else [] for row, *_ in rows]
    root = image_root_hint(images, out) if out is not None else str(images.resolve())
    builder = CocoBuilder(info={"description": f"metadata table {csv.name}", "image_root": root})
    cat_ids = {name: builder.add_category(name, supercategory)
               for name in sorted({label for labels in labelled for label in labels})}
    for (row, _, name, _), (height, width), labels in zip(rows, sizes, labelled):
        extras = {key: row[index].strip() for index, key in kept if row[index].strip()}
        image_id = builder.add_image(name, height, width, **extras)
        for label in labels:
            builder.add_label(image_id, cat_ids[label])
    report.add("images out", len(rows))
    if label_index is not None:
        report.add("images without a label", sum(not labels for labels in labelled))
    for label in cat_ids:
        report.add(f"labels out: {label}", sum(label in labels for labels in labelled))
    dataset = builder.build(images)
    if out is not None:
        dataset.write(out, indent=indent)
        report.output = str(out)
    return dataset, report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr convert metadata``."""
    parser.add_argument("csv", help="metadata CSV, one row per image")
    parser.add_argument("--images", required=True, help="folder the file names are relative to")
    parser.add_argument("--file-column", default="filename", help="column with the image file name (default: filename)")
    parser.add_argument("--label-column", default="finding",
                        help="column whose values become image-level labels (default: finding; '' for none)")
    parser.add_argument("--label-split", help="split label cells on this text into several labels, e.g. ','")
    parser.add_argument("--supercategory", default="finding", help="supercategory of the labels (default: finding)")
    parser.add_argument("--filter", action="append", default=[], dest="filters", metavar="CONDITION",
                        help="keep rows where CONDITION holds; repeat for AND. 'modality=X-ray', 'view in PA,AP', "
                             "'view not in L', 'age>=60' (also !=, <, <=, >; quote values with commas)")
    parser.add_argument("--keep", help="columns kept on the image record, 'patientid:patient_id,view,sex,age' "
                                       "(default: every column but the file name)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip rows whose image does not exist (counted) instead of failing")
    parser.add_argument("--sep", default=",", help="CSV separator (default: ',')")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr convert metadata``."""
    _, report = convert_metadata(
        args.csv, args.images, args.out, file_column=args.file_column, label_column=args.label_column or None,
        label_split=args.label_split, supercategory=args.supercategory, filters=args.filters, keep=args.keep,
        skip_missing=args.skip_missing, sep=args.sep, workers=args.workers, indent=args.indent)
    print(report.format())
    return 0


__all__ = ["convert_metadata"]
