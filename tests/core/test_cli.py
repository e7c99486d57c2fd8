"""The command line: --version, --help on every subcommand, and the core dataset commands."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cococxr
from cococxr.cli import COMMANDS, build_parser, main
from helpers import REPO


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cococxr {cococxr.__version__}"


def test_command_paths_are_unique_and_grouped():
    """Every command is reachable: no two share a path, and groups hold only two-word commands."""
    paths = [c.path for c in COMMANDS]
    assert len(paths) == len(set(paths)), paths
    singles = {p[0] for p in paths if len(p) == 1}
    groups = {p[0] for p in paths if len(p) == 2}
    assert not singles & groups, f"a word is both a command and a group: {singles & groups}"


@pytest.mark.parametrize("path", [c.path for c in COMMANDS], ids=[c.name for c in COMMANDS])
def test_help_on_every_subcommand(path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cococxr " + " ".join(path))


def test_python_dash_m_runs_without_loading_tensorflow():
    code = ("import sys, runpy; sys.argv=['cococxr','--help']\n"
            "try:\n    runpy.run_module('cococxr', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0\n"
            "assert 'tensorflow' not in sys.modules, 'cococxr --help imported tensorflow'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: cococxr" in proc.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: cococxr" in capsys.readouterr().out


def test_parser_builds_groups():
    parser = build_parser()
    args = parser.parse_args(["validate", "x.json"])
    assert args.coco == "x.json"


def test_cli_reference_matches_the_parsers():
    """docs/cli.md is generated from --help; regenerate it with `python -m cococxr.cli.reference`."""
    from pathlib import Path

    from cococxr.cli import reference_markdown

    committed = REPO / "docs" / "cli.md"
    assert committed.read_text() == reference_markdown(), \
        "docs/cli.md is out of date: run `python -m cococxr.cli.reference`"
