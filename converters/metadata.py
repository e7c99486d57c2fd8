"""Metadata tables -> COCO image-level labels (``cococxr convert metadata``).

One CSV row per image (e.g. the ieee8023 COVID-19 chest X-ray ``metadata.csv``):
a file name column, a label column (``finding``) whose values become image-level
label annotations (categories with supercategory ``finding``), row filters
(``modality=X-ray``, ``view in PA,AP``; see :mod:`cococxr.converters.filters`) and
columns kept on the image record (``patientid:patient_id,view``; cells kept as text,
empty cells left out). The image size is read from each image's header.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cococxr.coco import CocoBuilder
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.io import image_size
from cococxr.paths import safe_join

from .common import ConversionReport, finish, indent_option, info_image_root, out_option, parallel_map, workers_option
from .csv_table import CsvTable, read_csv_table
from .filters import parse_filters, select_rows
from .image_metadata import RESERVED_KEYS, parse_keep


def _image_size(job: tuple[str, int, str]) -> tuple[int, int]:
    """``(height, width)`` of one image; errors name the CSV line."""
    path, line, csv = job
    try:
        return image_size(path)
    except ImageReadError as exc:
        raise ImageReadError(f"{csv}: line {line}: {exc}") from exc


def _normal_name(name: str) -> str:
    """``name`` without ``.`` segments and repeated slashes: ``./a//x.png`` is ``a/x.png`` (``..`` kept)."""
    lead = "/" if name.startswith("/") else ""
    return lead + "/".join(part for part in name.split("/") if part not in ("", "."))


def _labels(cell: str, split: str | None) -> list[str]:
    """The labels of one cell (several when ``split`` is given), without blanks or repeats."""
    parts = cell.split(split) if split else [cell]
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _kept_columns(table: CsvTable, pairs: list[tuple[str, str]] | None, file_column: str) -> list[tuple[int, str]]:
    """``(column index, image key)`` of the kept ``(column, key)`` pairs; None: every column but the file name's."""
    if pairs is None:
        pairs = [(c, c) for c in table.columns if c != file_column]
    reserved = sorted({key for _, key in pairs} & RESERVED_KEYS)
    if reserved:
        raise ConfigError(f"--keep: image keys {reserved} are reserved; rename them (column:new_key)")
    return [(table.column_index(column, "--keep"), key) for column, key in pairs]


@dataclass
class MetadataOptions:
    """The options of :func:`convert_metadata` and ``cococxr convert metadata``.

    ``filters`` are ``column op value`` strings (or parsed :class:`~converters.filters.RowFilter`),
    all of which must hold; ``keep`` is ``"col:key,col2"`` or ``[(column, key)]``;
    ``label_column`` None or ``""`` gives no labels.
    """

    csv: PathArg = option(None, "metadata CSV, one row per image", positional=True, required=True)
    images: PathArg = option(None, "folder the file names are relative to", required=True)
    file_column: str = option("filename", "column with the image file name (default: filename)")
    label_column: str | None = option("finding", "column whose values become image-level labels "
                                                 "(default: finding; '' for none)")
    label_split: str | None = option(None, "split label cells on this text into several labels, e.g. ','")
    supercategory: str = option("finding", "supercategory of the labels (default: finding)")
    filters: list = option([], "keep rows where CONDITION holds; repeat for AND. 'modality=X-ray', 'view in PA,AP', "
                               "'view not in L', 'age>=60' (also !=, <, <=, >; quote values with commas)",
                           flags=("--filter",), metavar="CONDITION", repeat=True, parse=parse_filters)
    keep: list | None = option(None, "columns kept on the image record, 'patientid:patient_id,view,sex,age' "
                                     "(default: every column but the file name)", parse=parse_keep)
    skip_missing: bool = option(False, "skip rows whose image does not exist (counted) instead of failing")
    sep: str = option(",", "CSV separator (default: ',')")
    out: PathArg | None = out_option()
    workers: int = workers_option()
    indent: int | None = indent_option()


def convert_metadata(csv: PathArg, images: PathArg, out: PathArg | None = None, **options):
    """Convert a metadata CSV into COCO image records with image-level labels.

    Args:
        csv: the metadata CSV (UTF-8, optional BOM, LF or CRLF).
        images: folder the file names are relative to.
        out: COCO JSON to write atomically (nothing is written when None).
        **options: the other fields of :class:`MetadataOptions` (``file_column``,
            ``label_column``, ``filters``, ``keep``, ``skip_missing``, ...).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: unknown column, empty or repeated file name, missing image.
        ConfigError: a malformed filter (names the position), a reserved ``keep`` key,
            or a bad or unknown option.
        ImageReadError: an image header cannot be read (names the line).
    """
    opts = load_options(MetadataOptions, csv=csv, images=images, out=out, **options)
    file_column, label_column, label_split = opts.file_column, opts.label_column, opts.label_split
    csv, images = Path(opts.csv), Path(opts.images)
    table = read_csv_table(csv, opts.sep)
    file_index = table.column_index(file_column, "--file-column")
    label_index = table.column_index(label_column, "--label-column") if label_column else None
    kept = _kept_columns(table, opts.keep, table.columns[file_index])
    selected = select_rows(table, opts.filters)
    report = ConversionReport(source=str(csv))
    report.add("rows in", len(table.rows))
    report.add("rows filtered out", selected.count(False))
    rows, seen = [], {}
    for row, line, wanted in zip(table.rows, table.lines, selected):
        if not wanted:
            continue
        written = row[file_index].strip().replace("\\", "/")
        name = _normal_name(written)
        if not name:
            raise ConversionError(f"{csv}: line {line}: empty {file_column!r} cell")
        if name in seen:
            same = "" if name == written else f" (written {written!r}: the same file)"
            raise ConversionError(f"{csv}: line {line}: file {name!r}{same} repeats line {seen[name]}; one image "
                                  "would get two records, with possibly conflicting labels")
        seen[name] = line
        path = safe_join(images, name, f"{csv}: line {line}: {file_column}")
        if not path.is_file():
            if opts.skip_missing:
                report.add("rows skipped: image missing")
                continue
            raise ConversionError(f"{csv}: line {line}: image {path} does not exist "
                                  "(check --images and --file-column, or pass --skip-missing)")
        rows.append((row, line, name, str(path)))
    sizes = parallel_map(_image_size, [(path, line, str(csv)) for _, line, _, path in rows], opts.workers,
                         desc="reading image headers")
    labelled = [_labels(row[label_index], label_split) if label_index is not None else [] for row, *_ in rows]
    builder = CocoBuilder(info={"description": f"metadata table {csv.name}",
                                "image_root": info_image_root(images, opts.out)})
    cat_ids = {name: builder.add_category(name, opts.supercategory)
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
    return finish(builder, images, opts.out, report, opts.indent)


__all__ = ["MetadataOptions", "convert_metadata"]
