"""Row filters for CSV tables: ``column op value`` conditions, parsed, never evaluated as code.

Grammar (whitespace around tokens is free; keywords are case-insensitive)::

    filter   := column op value
    column   := word | quoted          word: characters other than space, quotes, , = ! < >
    op       := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in"
    value    := quoted | rest of the text, stripped          (for = == != < <= > >=)
              | item ("," item)*                              (for in / not in)
    item     := quoted | text up to the next comma, stripped
    quoted   := '"' any characters but '"' '"' | "'" any characters but "'" "'"

Examples: ``modality=X-ray``, ``finding = No Finding``, ``view in PA,AP``,
``view not in "AP Supine", L``, ``age >= 60``.

Semantics on a table of text cells (cells and values are compared after stripping
surrounding spaces, case-sensitively):

- ``=`` / ``==``: the cell equals the value; when both are numbers they are compared
  as numbers (``age=71`` matches ``71.0``). An empty value matches empty cells.
- ``!=``: not ``=`` (empty cells match ``view!=PA``).
- ``in`` / ``not in``: ``=`` against any item / none of the items.
- ``<``, ``<=``, ``>``, ``>=``: numeric columns only (every non-empty cell is a number);
  empty cells never match.

Several filters are combined with AND.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cococxr.errors import ConfigError, ConversionError
from cococxr.converters.csv_table import CsvTable

COMPARISONS = ("=", "==", "!=", "<", "<=", ">", ">=")
MEMBERSHIP = ("in", "not in")
NUMERIC_OPS = ("<", "<=", ">", ">=")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_STOP = set(" \t\r\n\"',=!<>")
_KEYWORD = re.compile(r"(not\s+in|in)(?=\s|$|[\"'])", re.IGNORECASE)
_SYMBOL_OPS = ("==", "!=", "<=", ">=", "=", "<", ">")


@dataclass(frozen=True)
class RowFilter:
    """One parsed condition.

    Attributes:
        column: the column name.
        op: one of :data:`COMPARISONS` or :data:`MEMBERSHIP` (``"=="`` is stored as ``"="``).
        values: the value (one item) or the list items.
        text: the filter as written.
    """

    column: str
    op: str
    values: tuple[str, ...]
    text: str

    def mask(self, table: CsvTable) -> list[bool]:
        """Which rows of ``table`` satisfy this condition.

        Raises:
            ConversionError: the column does not exist (lists the columns) or a numeric
                comparison is applied to a column with non-numeric cells (names the line).
        """
        index = table.column_index(self.column, f"--filter {self.text!r}")
        cells = [cell.strip() for cell in table.column_values(index)]
        if self.op in NUMERIC_OPS:
            return self._numeric_mask(table, cells)
        matches = [any(_equal(cell, value) for value in self.values) for cell in cells]
        return [not m for m in matches] if self.op in ("!=", "not in") else matches

    def _numeric_mask(self, table: CsvTable, cells: list[str]) -> list[bool]:
        for cell, line in zip(cells, table.lines):
            if cell and not _NUMBER.fullmatch(cell):
                raise ConversionError(
                    f"{table.path}: filter {self.text!r} compares numbers, but column {self.column!r} "
                    f"is not numeric (line {line} has {cell!r})")
        bound = float(self.values[0])
        compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[self.op]
        return [bool(cell) and compare(float(cell), bound) for cell in cells]


def _equal(cell: str, value: str) -> bool:
    if cell == value:
        return True
    return bool(_NUMBER.fullmatch(cell) and _NUMBER.fullmatch(value)) and float(cell) == float(value)


def _error(text: str, pos: int, message: str) -> ConfigError:
    """A ConfigError quoting the filter with a caret under position ``pos``."""
    return ConfigError(f"bad filter {text!r} at position {pos}: {message}\n  {text}\n  {' ' * pos}^")


class _Scanner:
    """Position-tracking reader over the filter text."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def quoted(self) -> str:
        quote, start = self.text[self.pos], self.pos
        end = self.text.find(quote, start + 1)
        if end < 0:
            raise _error(self.text, start, f"unterminated quote {quote}")
        self.pos = end + 1
        return self.text[start + 1:end]

    def column(self) -> str:
        self.skip_space()
        if not self.at_end() and self.text[self.pos] in "\"'":
            return self.quoted()
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in _WORD_STOP:
            self.pos += 1
        if self.pos == start:
            raise _error(self.text, start, "expected a column name")
        return self.text[start:self.pos]

    def operator(self) -> str:
        self.skip_space()
        for op in _SYMBOL_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return "=" if op == "==" else op
        keyword = _KEYWORD.match(self.text, self.pos)
        if keyword:
            self.pos = keyword.end()
            return "not in" if keyword.group(1).lower() != "in" else "in"
        raise _error(self.text, self.pos, "expected an operator (=, ==, !=, <, <=, >, >=, in, not in)")

    def single_value(self) -> str:
        self.skip_space()
        if not self.at_end() and self.text[self.pos] in "\"'":
            value = self.quoted()
            self.skip_space()
            if not self.at_end():
                raise _error(self.text, self.pos, "unexpected text after the quoted value")
            return value
        value = self.text[self.pos:].strip()
        self.pos = len(self.text)
        return value

    def items(self) -> list[str]:
        items = []
        while True:
            self.skip_space()
            start = self.pos
            if not self.at_end() and self.text[self.pos] in "\"'":
                items.append(self.quoted())
                self.skip_space()
            else:
                end = self.text.find(",", self.pos)
                end = len(self.text) if end < 0 else end
                item = self.text[self.pos:end].strip()
                if not item:
                    raise _error(self.text, start, "expected a list item (an empty item needs quotes: \"\")")
                items.append(item)
                self.pos = end
            if self.at_end():
                return items
            if self.text[self.pos] != ",":
                raise _error(self.text, self.pos, "expected ',' or the end of the list")
            self.pos += 1


def parse_filter(text: str) -> RowFilter:
    """Parse one ``column op value`` condition (see the module docstring for the grammar).

    Raises:
        ConfigError: the text is malformed; the message gives the position and a caret.
    """
    if not isinstance(text, str):
        raise ConfigError(f"a filter must be a string like 'modality=X-ray'; got {type(text).__name__}")
    scanner = _Scanner(text)
    column = scanner.column()
    op = scanner.operator()
    if op in MEMBERSHIP:
        values = tuple(scanner.items())
    else:
        value_pos = scanner.pos
        values = (scanner.single_value(),)
        if op in NUMERIC_OPS and not _NUMBER.fullmatch(values[0]):
            scanner.pos = value_pos
            scanner.skip_space()
            raise _error(text, scanner.pos, f"{op} needs a number, got {values[0]!r}")
    return RowFilter(column=column, op=op, values=values, text=text)


def parse_filters(filters) -> list[RowFilter]:
    """Parse filter strings (one string, or a list of strings and :class:`RowFilter`); parsed ones are kept.

    Raises:
        ConfigError: a malformed filter string.
    """
    items = [filters] if isinstance(filters, str) else filters
    return [item if isinstance(item, RowFilter) else parse_filter(item) for item in items]


def select_rows(table: CsvTable, filters) -> list[bool]:
    """Rows of ``table`` that satisfy every filter (strings are parsed first).

    Args:
        table: the CSV table.
        filters: iterable of filter strings or :class:`RowFilter`.

    Raises:
        ConfigError: a malformed filter string.
        ConversionError: unknown column or a numeric comparison on a non-numeric column.
    """
    keep = [True] * len(table.rows)
    for item in filters:
        condition = item if isinstance(item, RowFilter) else parse_filter(item)
        keep = [k and m for k, m in zip(keep, condition.mask(table))]
    return keep
