"""Label maps: which voxel value is which structure.

Accepted forms (value 0 is the background and never becomes a category):

- JSON ``{"1": "spleen", "2": "kidney_right"}`` (id -> name: MSD ``dataset.json``
  labels, TotalSegmentator-style class maps) or ``{"spleen": 1}`` (name -> id: nnU-Net v2);
- a ``dataset.json`` (nnU-Net v2 or MSD): its ``labels`` object is read;
- a JSON list of names ``["background", "spleen", ...]`` (index = value);
- CSV / TSV with a value column and a name column (a header row is optional; the first
  column of whole numbers is the value, the first other column the name);
- text lines ``value name [...]`` (3D Slicer colour tables, ``#`` comments).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Mapping

from cococxr.errors import ConfigError

_INT = re.compile(r"^\s*\d+\s*$")
MAX_VALUE = 65535


def _check(pairs: list[tuple[object, object]], source: str) -> dict[int, str]:
    """Validate ``(value, name)`` pairs into ``{value: name}`` sorted by value, background dropped."""
    result: dict[int, str] = {}
    names: dict[str, int] = {}
    for value, name in pairs:
        if isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: label {name!r} is a region {list(value)} (nnU-Net region-based "
                              "training); give a label map with one value per name")
        text = str(value).strip()
        if isinstance(value, bool) or not _INT.match(text):
            raise ConfigError(f"{source}: label value {value!r} for {name!r} is not a whole number")
        number = int(text)
        name = str(name).strip()
        if number == 0:
            continue
        if number > MAX_VALUE:
            raise ConfigError(f"{source}: label value {number} for {name!r} is above {MAX_VALUE}")
        if not name:
            raise ConfigError(f"{source}: label value {number} has an empty name")
        if number in result:
            raise ConfigError(f"{source}: label value {number} is listed twice ({result[number]!r}, {name!r})")
        if name in names:
            raise ConfigError(f"{source}: values {names[name]} and {number} are both named {name!r}; one "
                              "category per value keeps the conversion reversible: rename one")
        result[number], names[name] = name, number
    if not result:
        raise ConfigError(f"{source}: the label map has no foreground label (only 0 / background)")
    return dict(sorted(result.items()))


def label_map_from_mapping(data: Mapping | list, source: str = "label map") -> dict[int, str]:
    """``{value: name}`` from a JSON-like object (see the module docstring)."""
    if isinstance(data, Mapping) and "labels" in data and isinstance(data["labels"], (Mapping, list)):
        data = data["labels"]
    if isinstance(data, list):
        return _check(list(enumerate(data)), source)
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{source}: expected an object of value -> name (or name -> value) or a list of names")
    keys_are_values = all(_INT.match(str(k)) for k in data)
    if keys_are_values:
        return _check(list(data.items()), source)
    return _check([(v, k) for k, v in data.items()], source)


def _table_rows(text: str) -> list[list[str]]:
    """Rows of a CSV/TSV (sniffed) or whitespace-separated text, comments and blank lines dropped."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    body = "\n".join(lines)
    if any(d in body for d in (",", "\t", ";")):
        delimiter = next(d for d in ("\t", ",", ";") if d in body)
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(body), delimiter=delimiter) if row]
    return [line.split(None, 2)[:2] for line in lines]


def _from_rows(rows: list[list[str]], source: str) -> dict[int, str]:
    if rows and not any(_INT.match(c) for c in rows[0]):
        rows = rows[1:]  # header
    pairs = []
    for n, row in enumerate(rows, start=1):
        value_col = next((i for i, c in enumerate(row) if _INT.match(c)), None)
        name_col = next((i for i, c in enumerate(row) if i != value_col and c and not _INT.match(c)), None)
        if value_col is None or name_col is None:
            raise ConfigError(f"{source}: row {n} {row}: expected a whole-number value and a name")
        pairs.append((row[value_col], row[name_col].strip('"')))
    return _check(pairs, source)


def read_label_map(spec: str | os.PathLike | Mapping | list) -> dict[int, str]:
    """Read a label map from a file (JSON, CSV, TSV, text) or a mapping / list.

    Returns:
        ``{value: name}`` sorted by value, without the background (0).

    Raises:
        ConfigError: unreadable file, malformed entries, duplicate values or names (the
            message names the file and the entry).
    """
    if isinstance(spec, (Mapping, list)):
        return label_map_from_mapping(spec)
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"label map {path}: cannot read it ({exc})") from exc
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"label map {path}: not valid JSON ({exc})") from exc
        return label_map_from_mapping(data, f"label map {path}")
    return _from_rows(_table_rows(text), f"label map {path}")


__all__ = ["label_map_from_mapping", "read_label_map"]
