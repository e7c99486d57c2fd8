"""Generate the command-line bad-input corpus: ``python tests/reliability/bad_inputs/make_cli_corpus.py``.

Runs every ``cli_cases_*.py`` module's ``build(corpus)`` and writes ``cli_manifest.json``;
the files under ``cli/`` and the manifest are committed. See cli_corpus.py for the format.
"""
from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_corpus import CLI_DIR, Corpus  # noqa: E402


def main() -> None:
    if CLI_DIR.exists():
        shutil.rmtree(CLI_DIR)
    CLI_DIR.mkdir()
    corpus = Corpus()
    for module in sorted(HERE.glob("cli_cases_*.py")):
        importlib.import_module(module.stem).build(corpus)
    corpus.save()
    print(f"{len(corpus.cases)} CLI cases -> {CLI_DIR}")


if __name__ == "__main__":
    main()
