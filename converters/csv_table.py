"""Read and write CSV tables exactly: cells as text, with the file's own conventions.

Converters that must reproduce a CSV byte for byte (Kaggle RLE round trips) need more
than the cells: the line terminator, a UTF-8 byte-order mark, whether every field was
quoted and whether the last line ends with a newline. :class:`CsvTable` keeps them.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from cococxr.errors import ConversionError

_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class CsvStyle:
    """How a CSV file is written.

    Attributes:
        sep: field separator.
        newline: line terminator (``"\\n"`` or ``"\\r\\n"``).
        bom: the file starts with a UTF-8 byte-order mark.
        quote_all: every field is quoted (else only fields that need it).
        trailing_newline: the last line ends with ``newline``.
    """

    sep: str = ","
    newline: str = "\n"
    bom: bool = False
    quote_all: bool = False
    trailing_newline: bool = True

    def to_dict(self) -> dict:
        """JSON-safe form (stored in a COCO ``info`` block)."""
        return {"sep": self.sep, "newline": self.newline, "bom": self.bom,
                "quote_all": self.quote_all, "trailing_newline": self.trailing_newline}

    @classmethod
    def from_dict(cls, data: dict | None) -> CsvStyle:
        """Inverse of :meth:`to_dict`; missing keys take the defaults."""
        data = data or {}
        return cls(**{k: data[k] for k in ("sep", "newline", "bom", "quote_all", "trailing_newline")
                      if k in data})


@dataclass
class CsvTable:
    """A CSV file as text cells.

    Attributes:
        path: where it was read from (for messages).
        columns: header names, as written in the file.
        rows: data rows, each a list of ``len(columns)`` strings.
        lines: the file line number (header = 1) of each data row, for messages.
        style: the file's writing conventions.
    """

    path: str
    columns: list[str]
    rows: list[list[str]]
    lines: list[int]
    style: CsvStyle = field(default_factory=CsvStyle)

    def column_index(self, name: str, option: str = "column") -> int:
        """Index of column ``name``: an exact match, else a unique match ignoring case and spaces.

        Raises:
            ConversionError: no such column; names the option and the columns found.
        """
        if name in self.columns:
            return self.columns.index(name)
        loose = [i for i, c in enumerate(self.columns) if c.strip().lower() == name.strip().lower()]
        if len(loose) == 1:
            return loose[0]
        raise ConversionError(f"{self.path}: no column {name!r} ({option}); columns found: {self.columns}")

    def column_values(self, index: int) -> list[str]:
        """All cells of one column."""
        return [row[index] for row in self.rows]


def read_csv_table(path: str | os.PathLike, sep: str = ",") -> CsvTable:
    """Read a CSV file as text cells, recording its conventions.

    Handles a UTF-8 byte-order mark and ``\\n`` or ``\\r\\n`` line endings. Blank lines
    are skipped.

    Args:
        path: the CSV file.
        sep: field separator (one character).

    Raises:
        ConversionError: unreadable or non-UTF-8 file, empty file, a header that looks
            separated by another character (names it and the ``--sep`` to pass), a row
            whose field count differs from the header's, or a CSV syntax error; messages
            name the line.
    """
    path = Path(path)
    if len(sep) != 1:
        raise ConversionError(f"the CSV separator must be one character; got {sep!r}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read the CSV file ({exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                              "save the CSV as UTF-8") from exc
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    if not text.strip():
        raise ConversionError(f"{path}: the CSV file is empty")
    first_end = text.find("\n")
    newline = "\r\n" if first_end > 0 and text[first_end - 1] == "\r" else "\n"
    style = CsvStyle(sep=sep, newline=newline, bom=bom, quote_all=text.startswith('"'),
                     trailing_newline=text.endswith("\n"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    columns: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or row == [""]:
                continue
            if columns is None:
                columns = row
                _check_separator(path, columns, sep)
                continue
            if len(row) != len(columns):
                raise ConversionError(f"{path}: line {reader.line_num} has {len(row)} fields, the header "
                                      f"has {len(columns)} ({columns}); check the separator and quoting")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise ConversionError(f"{path}: CSV syntax error at line {reader.line_num}: {exc}") from exc
    return CsvTable(str(path), columns or [], rows, lines, style)


def _check_separator(path: Path, columns: list[str], sep: str) -> None:
    """Raise if a one-column header contains another usual separator."""
    if len(columns) != 1:
        return
    for other, name in _OTHER_SEPARATORS.items():
        if other != sep and other in columns[0]:
            raise ConversionError(
                f"{path}: the header {columns[0]!r} has a single {sep!r}-separated column but contains "
                f"{name}s; the file looks {name}-separated: pass --sep {other!r} (sep={other!r} in Python)")


def format_csv(columns: list[str], rows: list[list[str]], style: CsvStyle = CsvStyle()) -> str:
    """Render a header and rows as CSV text in ``style`` (the inverse of :func:`read_csv_table`)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=style.sep, lineterminator=style.newline,
                        quoting=csv.QUOTE_ALL if style.quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if not style.trailing_newline and text.endswith(style.newline):
        text = text[: -len(style.newline)]
    return ("\ufeff" if style.bom else "") + text
