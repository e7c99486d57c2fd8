"""Building blocks of the command-line bad-input corpus (``tests/reliability/bad_inputs/cli/``).

A CLI case is a folder of input files under ``cli/<id>/`` and one entry of
``cli_manifest.json``: the ``argv`` to run (``cococxr ARGV``, run with the case's working
copy as the current folder; ``{dir}`` in an argument is that folder's absolute path), the
``exit`` status expected (0, or ``"error"`` for 1 or 2), message fragments to ``match``
(in stdout + stderr, case-insensitive), paths that must be ``absent`` or ``present``
afterwards, and an optional ``signal`` test is not here (see tests/reliability/test_signals.py).

Case modules (``cli_cases_*.py``) define ``build(corpus)`` and call :meth:`Corpus.case`;
``make_cli_corpus.py`` runs them all and writes the manifest.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI_DIR = HERE / "cli"
MANIFEST = HERE / "cli_manifest.json"


@dataclass
class Corpus:
    """Collects CLI cases and writes their files."""

    cases: list[dict] = field(default_factory=list)

    def folder(self, case_id: str) -> Path:
        """A fresh, empty folder for the case's input files."""
        path = CLI_DIR / case_id
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def write(self, case_id: str, rel: str, data: bytes | str) -> Path:
        """Write one input file of a case (text is written as UTF-8)."""
        path = CLI_DIR / case_id / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def link(self, case_id: str, rel: str, target: str) -> Path:
        """A symbolic link ``rel`` -> ``target`` (relative targets stay inside the copy)."""
        path = CLI_DIR / case_id / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        return path

    def case(self, case_id: str, argv: list[str], *, exit: int | str = "error", match=(), absent=(),
             present=(), note: str = "") -> None:
        """Record one case; its files must already be written under ``cli/<case_id>/``."""
        if not (CLI_DIR / case_id).is_dir():
            raise AssertionError(f"case {case_id}: write its files first")
        self.cases.append({"id": case_id, "argv": list(argv), "exit": exit, "match": list(match),
                           "absent": list(absent), "present": list(present), "note": note})

    def save(self) -> None:
        """Write the manifest (sorted by id, so that regenerating gives the same file)."""
        cases = sorted(self.cases, key=lambda c: c["id"])
        ids = [c["id"] for c in cases]
        if len(ids) != len(set(ids)):
            raise AssertionError(f"duplicate case ids: {sorted(i for i in ids if ids.count(i) > 1)}")
        MANIFEST.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
