"""Option schemas (cococxr.config): plain options for commands without a config file, and
the config style of the pipelines, from one dataclass."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from cococxr.command import Command
from cococxr.config import (PathArg, add_arguments, add_config_arguments, config_from_args, load_config,
                            load_options, option, option_values)
from cococxr.errors import ConfigError


def _upper_words(value):
    """A parser: ``"a,b"`` or ``["a", "b"]`` -> ``["A", "B"]``."""
    words = value.split(",") if isinstance(value, str) else value
    if any(not w for w in words):
        raise ConfigError(f"--words {value!r}: empty word")
    return [w.upper() for w in words]


@dataclass
class Plain:
    source: PathArg = option(None, "the input", positional=True, required=True)
    inputs: list[str] = option([], "more inputs", positional=True)
    out: PathArg | None = option(None, "file to write", flags=("--out", "-o"), cli_required=True)
    switch: bool = option(False, "a plain switch")
    tristate: bool | None = option(None, "on, off or unset")
    keep: list[str] = option([], "repeatable", flags=("--keep-row",), metavar="ROW", repeat=True)
    words: list | None = option(None, "comma-separated words", parse=_upper_words)
    count: int = option(1, "a number", choices=(1, 2, 3))
    ratio: float | None = option(None, "a ratio")
    name: str | None = option(None, "text kept as given ('' too)")
    mode: str = option("a", "a choice", choices=("a", "b"))
    key: str = option(None, "needed everywhere", flags=("--id",), required=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    add_arguments(parser, Plain)
    return parser


def _parse(argv: list[str]) -> dict:
    return option_values(Plain, _parser().parse_args(argv))


# ------------------------------------------------------------------ add_arguments
def test_positionals_flags_aliases_and_defaults():
    values = _parse(["in.txt", "x", "y", "-o", "out.json", "--id", "k"])
    assert values["source"] == "in.txt" and values["inputs"] == ["x", "y"]
    assert values["out"] == "out.json" and values["key"] == "k"
    assert values["switch"] is False and values["tristate"] is None and values["keep"] == []
    assert values["count"] == 1 and values["mode"] == "a" and values["words"] is None
    assert _parse(["in.txt", "x", "--out", "o", "--id", "k"])["out"] == "o"


def test_store_true_has_no_negative_form_and_other_bools_do(capsys):
    assert _parse(["s", "x", "-o", "o", "--id", "k", "--switch"])["switch"] is True
    assert _parse(["s", "x", "-o", "o", "--id", "k", "--no-tristate"])["tristate"] is False
    assert _parse(["s", "x", "-o", "o", "--id", "k", "--tristate"])["tristate"] is True
    with pytest.raises(SystemExit):
        _parse(["s", "x", "-o", "o", "--id", "k", "--no-switch"])
    assert "unrecognized arguments: --no-switch" in capsys.readouterr().err


def test_repeatable_flag_appends_and_defaults_are_not_shared():
    parser = _parser()
    first = parser.parse_args(["s", "x", "-o", "o", "--id", "k", "--keep-row", "a=1", "--keep-row", "b in 2,3"])
    assert first.keep == ["a=1", "b in 2,3"]
    assert parser.parse_args(["s", "x", "-o", "o", "--id", "k"]).keep == []


def test_argparse_checks_types_choices_and_required_arguments(capsys):
    assert _parse(["s", "x", "-o", "o", "--id", "k", "--count", "3", "--ratio", "0.5"])["count"] == 3
    for argv, message in [(["s", "x", "-o", "o", "--id", "k", "--count", "two"], "invalid int value: 'two'"),
                          (["s", "x", "-o", "o", "--id", "k", "--count", "7"], "invalid choice: 7"),
                          (["s", "x", "--id", "k"], "the following arguments are required: --out/-o"),
                          (["s", "x", "-o", "o"], "the following arguments are required: --id")]:
        with pytest.raises(SystemExit):
            _parse(argv)
        assert message in capsys.readouterr().err


def test_help_is_shown_as_written():
    text = _parser().format_help()
    assert "--out OUT, -o OUT" in text and "file to write" in text
    assert "--keep-row ROW" in text and "--tristate, --no-tristate" in text
    assert "--switch" in text and "--no-switch" not in text
    assert "{1,2,3}" in text and "(default:" not in text


# ------------------------------------------------------------------ load_options
def test_load_options_takes_values_as_given():
    opts = load_options(Plain, source=Path("in"), key="k", name="", words="a,b")
    assert opts.source == Path("in") and opts.name == "" and opts.words == ["A", "B"]
    assert opts.out is None  # cli_required: only the command line must give it
    assert load_options(Plain, source="in", key="k", name="none").name == "none"
    assert load_options(Plain, source="in", key="k", words=["x"]).words == ["X"]
    assert load_options(Plain, source="in", key="k", words=None).words is None


@pytest.mark.parametrize("values, message", [
    ({"count": "2"}, "count: expected an integer, got '2'"),
    ({"count": 5}, "count=5 is not one of 1, 2, 3"),
    ({"switch": "yes"}, "switch: expected True or False"),
    ({"ratio": "half"}, "ratio: expected a number"),
    ({"source": 3}, "source: expected a path, got 3"),
    ({"mode": "c"}, "mode='c' is not one of a, b"),
    ({"words": "a,,b"}, "--words 'a,,b': empty word"),
    ({"inputs": "x"}, "inputs: expected a list"),
])
def test_load_options_rejects_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        load_options(Plain, **{"source": "in", "key": "k", **values})


def test_load_options_names_unknown_and_missing_options():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'cont' \(did you mean 'count'\?\)"):
        load_options(Plain, source="in", key="k", cont=2)
    with pytest.raises(ConfigError, match=r"missing required option\(s\): source \(argument source\), "
                                          r"key \(flag --id\)"):
        load_options(Plain)


def test_parsers_run_on_command_line_text_too():
    values = _parse(["s", "x", "-o", "o", "--id", "k", "--words", "a,b"])
    assert values["words"] == "a,b"  # parsed when the options are built
    assert load_options(Plain, **values).words == ["A", "B"]


def test_command_from_schema_runs_the_function_with_the_fields_as_keywords(capsys):
    calls = []

    def function(source, out=None, **options):
        calls.append({"source": source, "out": out, **options})
        return load_options(Plain, source=source, out=out, **options)

    command = Command.from_schema(("t",), "a test command", Plain, function, lambda opts: print(opts.words))
    parser = argparse.ArgumentParser(prog="t")
    command.configure(parser)
    assert command.run(parser.parse_args(["s", "x", "-o", "o", "--id", "k", "--words", "a"])) == 0
    assert capsys.readouterr().out == "['A']\n"
    assert set(calls[0]) == {f for f in Plain.__dataclass_fields__}


# ------------------------------------------------------------------ config style (pipelines)
@dataclass
class Config:
    weights: str | None = option("imagenet", "weights")
    size: int = option(64, "input size")
    flag: bool = option(False, "a flag")
    out: str | None = option(None, "output", flags=("--out", "-o"))
    tags: list[str] = option([], "tags", repeat=True)


def test_config_style_converts_text_and_keeps_its_flags():
    parser = argparse.ArgumentParser(prog="t")
    add_config_arguments(parser, Config)
    args = parser.parse_args(["--weights", "none", "--size", "32", "--no-flag", "-o", "x", "--tags", "a",
                              "--tags", "b,c"])
    config = config_from_args(Config, args)
    assert config == Config(weights=None, size=32, flag=False, out="x", tags=["a", "b", "c"])
    assert "(default: imagenet)" in parser.format_help()
    assert load_config(Config, {"size": "48", "flag": "yes"}) == Config(size=48, flag=True)


def test_config_style_has_no_positionals():
    with pytest.raises(TypeError, match="flags only"):
        add_config_arguments(argparse.ArgumentParser(), Plain)
