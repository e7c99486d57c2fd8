"""Row-filter parser: grammar, error positions, and a pandas reference for the semantics."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cococxr.converters.csv_table import CsvTable
from cococxr.converters.filters import RowFilter, parse_filter, select_rows
from cococxr.errors import CococxrError, ConfigError, ConversionError

COLUMNS = ["view", "age", "finding", "Patient Age"]
TEXT_POOL = ["PA", "AP", "AP Supine", "L", "", "No Finding", "COVID-19", " PA "]
NUM_POOL = ["71", "71.0", "30", "5.5", "", "-2", "1e2", "100"]


def make_table(rows: list[list[str]]) -> CsvTable:
    return CsvTable("meta.csv", list(COLUMNS), rows, list(range(2, len(rows) + 2)))


TABLE = make_table([["PA", "71", "COVID-19", "30"], ["AP Supine", "", "No Finding", "5.5"],
                    ["L", "30.0", "COVID-19", ""], ["", "5", "Pneumonia", "71"]])


@pytest.mark.parametrize("text, column, op, values", [
    ("modality=X-ray", "modality", "=", ("X-ray",)),
    ("finding == No Finding", "finding", "=", ("No Finding",)),
    ("view != PA", "view", "!=", ("PA",)),
    ("view in PA,AP", "view", "in", ("PA", "AP")),
    ("view NOT IN 'AP Supine' , L", "view", "not in", ("AP Supine", "L")),
    ('"Patient Age">=60', "Patient Age", ">=", ("60",)),
    ("age < 1.5e1", "age", "<", ("1.5e1",)),
    ("sex=", "sex", "=", ("",)),
    ('view in "", PA', "view", "in", ("", "PA")),
])
def test_parse(text, column, op, values):
    assert parse_filter(text) == RowFilter(column, op, values, text)


@pytest.mark.parametrize("text, pos", [
    ("=PA", 0), ("view PA", 5), ("view ! PA", 5), ("view in PA,,AP", 11), ("view in", 7),
    ("age < old", 6), ('view = "PA" x', 12), ('"view = PA', 0), ("view in 'PA' AP", 13), ("view inPA", 5),
])
def test_malformed_filters_name_the_position(text, pos):
    with pytest.raises(ConfigError) as exc:
        parse_filter(text)
    assert f"at position {pos}:" in str(exc.value)
    assert text in str(exc.value)


def test_selects_rows():
    assert select_rows(TABLE, ["view in PA, AP Supine"]) == [True, True, False, False]
    assert select_rows(TABLE, ["age=30"]) == [False, False, True, False]  # 30 == 30.0
    assert select_rows(TABLE, ["age>=30", "finding=COVID-19"]) == [True, False, True, False]
    assert select_rows(TABLE, ["view!=PA"]) == [False, True, True, True]
    assert select_rows(TABLE, ["view="]) == [False, False, False, True]
    assert select_rows(TABLE, []) == [True] * 4


def test_unknown_column_lists_the_columns():
    with pytest.raises(ConversionError, match=r"no column 'modality'.*columns found: \['view'"):
        select_rows(TABLE, ["modality=X-ray"])


def test_numeric_comparison_on_text_column_names_the_line():
    with pytest.raises(ConversionError, match=r"column 'view' is not numeric \(line 2 has 'PA'\)"):
        select_rows(TABLE, ["view > 3"])


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_random_text_raises_only_documented_errors(text):
    try:
        select_rows(TABLE, [text])
    except (ConfigError, ConversionError):
        pass


@settings(max_examples=200)
@given(st.lists(st.sampled_from(list(" \t,=!<>'\"inotINOT") + COLUMNS + TEXT_POOL), max_size=12)
       .map("".join))
def test_operator_soup_raises_only_documented_errors(text):
    try:
        select_rows(TABLE, [text])
    except CococxrError as exc:
        assert isinstance(exc, (ConfigError, ConversionError))


def _quote(value: str, draw) -> str:
    """Write a value bare when the grammar allows it, else (or at random) quoted."""
    bare_ok = value == value.strip() and value != "" and not value.startswith(("'", '"'))
    return value if bare_ok and draw(st.booleans()) else draw(st.sampled_from(['"', "'"])).join(("", value, ""))


@st.composite
def table_and_filter(draw):
    rows = draw(st.lists(st.tuples(st.sampled_from(TEXT_POOL), st.sampled_from(NUM_POOL),
                                   st.sampled_from(TEXT_POOL), st.sampled_from(NUM_POOL)).map(list),
                         min_size=1, max_size=8))
    column = draw(st.sampled_from(COLUMNS))
    numeric = column in ("age", "Patient Age")
    ops = ["=", "==", "!=", "in", "not in"] + (["<", "<=", ">", ">="] if numeric else [])
    op = draw(st.sampled_from(ops))
    pool = NUM_POOL if numeric else TEXT_POOL
    space = st.sampled_from(["", " ", "  "])
    column_text = f'"{column}"' if " " in column or draw(st.booleans()) else column
    if op in ("in", "not in"):
        items = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        value_text = ",".join(draw(space) + _quote(i.strip(), draw) + draw(space) for i in items)
        values = [i.strip() for i in items]
    else:
        value = draw(st.sampled_from([v for v in pool if v] if op in ("<", "<=", ">", ">=") else pool)).strip()
        value_text, values = _quote(value, draw), [value]
    sep = " " if op in ("in", "not in") else draw(space)
    text = f"{draw(space)}{column_text}{sep}{op}{' ' if op in ('in', 'not in') else draw(space)}{value_text}"
    return rows, column, op, values, text


def _reference(rows, column, op, values) -> list[bool]:
    frame = pd.DataFrame(rows, columns=COLUMNS, dtype=str)
    cells = frame[column].str.strip()
    numbers = pd.to_numeric(cells.where(cells != ""), errors="coerce")
    if op in ("<", "<=", ">", ">="):
        bound = float(values[0])
        result = {"<": numbers < bound, "<=": numbers <= bound, ">": numbers > bound, ">=": numbers >= bound}[op]
        return result.fillna(False).astype(bool).tolist()
    numeric_values = [float(v) for v in values if pd.notna(pd.to_numeric(v or None, errors="coerce"))]
    match = cells.isin(values) | numbers.isin(numeric_values)
    return (~match if op in ("!=", "not in") else match).tolist()


@settings(max_examples=200)
@given(table_and_filter())
def test_valid_filters_match_pandas(case):
    rows, column, op, values, text = case
    condition = parse_filter(text)
    assert condition.column == column and list(condition.values) == values
    assert select_rows(make_table(rows), [condition]) == _reference(rows, column, op, values)
