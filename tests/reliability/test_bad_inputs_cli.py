"""The command-line bad-input corpus: every case through the real ``cococxr`` command.

For each case of tests/reliability/bad_inputs/cli_manifest.json (made by make_cli_corpus.py), the
case's folder is copied to a temporary folder, every input file is hashed, and
``python -m cococxr ARGV`` runs there. It must print no traceback, exit as the case says
(0, or 1/2 for an error) with the expected message fragments, leave every input file
byte-identical (links included), and leave no temporary file behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = json.loads((CORPUS / "cli_manifest.json").read_text(encoding="utf-8"))
TEMP_MARKERS = (".tmp", ".part", "~")


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256 of the bytes (or 'link -> target')}`` of every entry under ``folder``."""
    state = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            state[rel] = f"link -> {os.readlink(path)}"
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run_cli(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m cococxr`` in ``cwd`` without progress bars."""
    env = {**os.environ, "COCOCXR_PROGRESS": "0", "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-m", "cococxr", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_corpus_is_complete():
    folders = {p.name for p in (CORPUS / "cli").iterdir() if p.is_dir()}
    assert folders == {c["id"] for c in CASES}, "every case has its folder and no folder is left over"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_cli_case(case, tmp_path):
    work = tmp_path / "case"
    shutil.copytree(CORPUS / "cli" / case["id"], work, symlinks=True)
    before = snapshot(work)
    argv = [arg.replace("{dir}", str(work)) for arg in case["argv"]]
    result = run_cli(argv, work)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    if case["exit"] == 0:
        assert result.returncode == 0, output
    else:
        assert result.returncode in (1, 2), f"exit {result.returncode}:\n{output}"
    for fragment in case["match"]:
        assert fragment.lower() in output.lower(), f"{fragment!r} not in:\n{output}"
    after = snapshot(work)
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, f"inputs changed or removed: {changed}"
    leftovers = [p for p in after if p not in before and (Path(p).name.startswith(".")
                                                          or Path(p).name.endswith(TEMP_MARKERS))]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    for rel in case["absent"]:
        assert not (work / rel).exists(), f"{rel} must not be written"
    for rel in case["present"]:
        assert (work / rel).exists(), f"{rel} must be written"
