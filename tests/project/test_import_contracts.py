"""The import-linter contracts of pyproject.toml hold (layers, independent tasks, no cycles).

import-linter reads a package from its folder, and ``converters/`` and ``pipelines/`` only
become ``cococxr.converters`` and ``cococxr.pipelines`` when installed (a ``package-dir``
mapping). So the test lays the three source roots out as they are installed, in a temporary
folder, and runs ``lint-imports`` on that copy with the repository's pyproject.toml.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

LAYOUT = {"cococxr": "cococxr", "converters": "cococxr/converters", "pipelines": "cococxr/pipelines",
          "configs": "cococxr/configs"}


def installed_layout(target: Path) -> Path:
    """Copy the source roots to ``target`` as setup.py installs them; returns ``target``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source, dest in LAYOUT.items():
        shutil.copytree(REPO / source, target / dest, ignore=ignore)
    return target


def test_import_contracts_hold(tmp_path):
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (it is in the test extra)")
    layout = installed_layout(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(layout)}
    result = subprocess.run([str(lint), "--no-cache", str(REPO / "pyproject.toml")], cwd=layout, env=env,
                            capture_output=True, text=True, timeout=120)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "3 kept, 0 broken" in report, report
