"""Attach rows of a metadata CSV to image records (extra keys and image-level labels).

Used by the mask converters' ``--metadata CSV --metadata-key COL --keep ... --label-column COL``
options. A row is matched to an image by its key column: first against the image's
``file_name``, then against its base name, then against its stem, so ``00870a9c.png``,
``COVID/images/COVID-1.png`` and ``00870a9c`` all work as keys.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cococxr.errors import ConfigError, ConversionError

#: Image record keys a metadata column may not overwrite.
RESERVED_KEYS = frozenset({"id", "file_name", "height", "width", "mask_resized_from"})


def parse_keep(spec: str | list | None) -> list[tuple[str, str]] | None:
    """Parse ``"patientid:patient_id,view,finding"`` (or the same as a list) into ``[(column, key), ...]``.

    ``None`` or an empty string means "every column" (resolved when the CSV is read).
    ``(column, key)`` pairs in a list are kept, so parsing a parsed value changes nothing.
    """
    if spec is None or (isinstance(spec, str) and not spec):
        return None
    pairs = []
    for part in (spec.split(",") if isinstance(spec, str) else spec):
        if isinstance(part, (tuple, list)) and len(part) == 2:
            pairs.append((str(part[0]), str(part[1])))
            continue
        part = part.strip()
        if not part:
            continue
        column, _, key = part.partition(":")
        pairs.append((column.strip(), (key or column).strip()))
    return pairs


def _unique_index(rows: dict[str, dict], transform) -> dict[str, str]:
    """Map ``transform(key)`` -> key for transformed keys that are unique."""
    seen: dict[str, list[str]] = {}
    for key in rows:
        seen.setdefault(transform(key), []).append(key)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


@dataclass
class MetadataTable:
    """A metadata CSV indexed by its key column.

    Attributes:
        path: the CSV file.
        key: the key column.
        keep: ``(column, image key)`` pairs copied onto matched image records.
        label_column: column whose value becomes an image-level label (or None).
        rows: key value -> row (column -> text).
    """

    path: Path
    key: str
    keep: list[tuple[str, str]]
    label_column: str | None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self):
        self._by_name = _unique_index(self.rows, lambda k: PurePosixPath(k.replace("\\", "/")).name)
        self._by_stem = _unique_index(self.rows, lambda k: PurePosixPath(k.replace("\\", "/")).stem)

    def row_key(self, file_name: str) -> str | None:
        """The key of the row describing ``file_name``, or None."""
        if file_name in self.rows:
            return file_name
        name = PurePosixPath(file_name)
        return self._by_name.get(name.name) or self._by_stem.get(name.stem)

    def extras(self, row: dict[str, str]) -> dict[str, str]:
        """The kept columns of ``row`` as image keys (empty cells left out)."""
        return {key: row[column] for column, key in self.keep if row.get(column, "") != ""}

    def label(self, row: dict[str, str]) -> str | None:
        """The image-level label of ``row`` (None if no label column or an empty cell)."""
        if self.label_column is None:
            return None
        return row.get(self.label_column, "").strip() or None


def read_metadata(path: str | os.PathLike, key: str = "filename", keep: str | list | None = None,
                  label_column: str | None = None) -> MetadataTable:
    """Read a metadata CSV.

    Args:
        path: the CSV (UTF-8, header row).
        key: column holding the image file name (or its base name or stem).
        keep: ``"col:key,col2,..."`` columns to copy onto image records, renamed after
            the colon (or :func:`parse_keep`'s pairs); ``None`` copies every column except
            ``key`` under its own name.
        label_column: column whose values become image-level label annotations.

    Raises:
        ConfigError: a named column is missing, or a kept key is reserved.
        ConversionError: the CSV cannot be read, or a key value is empty or repeated
            (the message names the rows).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            raw_rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConversionError(f"{path}: cannot read the metadata CSV ({exc})") from exc
    pairs = parse_keep(keep) or [(c, c) for c in columns if c != key]
    wanted = [key, *(c for c, _ in pairs), *([label_column] if label_column else [])]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise ConfigError(f"{path}: no column(s) {', '.join(missing)}; the columns are {', '.join(columns)}")
    reserved = sorted({k for _, k in pairs} & RESERVED_KEYS)
    if reserved:
        raise ConfigError(f"--keep: image keys {', '.join(reserved)} are reserved; rename them (column:new_key)")
    rows: dict[str, dict[str, str]] = {}
    first_row: dict[str, int] = {}
    for number, row in enumerate(raw_rows, start=2):
        value = (row.get(key) or "").strip()
        if not value:
            raise ConversionError(f"{path}, row {number}: empty {key!r} cell")
        if value in rows:
            raise ConversionError(
                f"{path}, row {number}: {key} {value!r} repeats row {first_row[value]}; keys must be unique")
        rows[value] = row
        first_row[value] = number
    return MetadataTable(path=path, key=key, keep=pairs, label_column=label_column, rows=rows)
