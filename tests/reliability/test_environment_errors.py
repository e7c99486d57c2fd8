"""Class 6 of issue 17, the environment half: outputs the system refuses (a folder where a
file goes, a file where a folder goes, a read-only folder, a full disk) give one line naming
the path, exit 2, no traceback and no temporary file."""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SAMPLE, shared


def run(argv, cwd: Path, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit():  # a full disk, as the process sees it: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    return subprocess.run([sys.executable, "-m", "cococxr", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "COCOCXR_PROGRESS": "0"}, timeout=120,
                          preexec_fn=limit if file_size_limit else None)


def one_clean_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cococxr: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def no_temp_files(folder: Path) -> None:
    assert [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")] == []


@pytest.fixture
def data(tmp_path) -> Path:
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for name in sorted(p.name for p in (SAMPLE / "masks").glob("*.png"))[:4]:
        shutil.copy(SAMPLE / "images" / name, tmp_path / "images" / name)
        shutil.copy(SAMPLE / "masks" / name, tmp_path / "masks" / name)
    assert run(["convert", "masks", "images", "masks", "--out", "coco.json"], tmp_path).returncode == 0
    return tmp_path


def test_full_disk_is_one_line(data):
    result = run(["export", "rle-csv", "coco.json", "--order", "row", "--out", "rle.csv"], data, file_size_limit=64)
    one_clean_line(result, "rle.csv", "File too large")
    assert not (data / "rle.csv").exists()
    no_temp_files(data)
    result = run(["export", "masks", "coco.json", "--out", "exported", "--workers", "2"], data, file_size_limit=64)
    one_clean_line(result, "exported/", "File too large")
    no_temp_files(data)


def test_folder_where_a_file_goes_and_back(data):
    (data / "adir").mkdir()
    (data / "afile").write_text("x")
    one_clean_line(run(["convert", "masks", "images", "masks", "--out", "adir"], data), "adir", "is a folder")
    one_clean_line(run(["export", "masks", "coco.json", "--out", "afile"], data), "afile", "is a file")
    one_clean_line(run(["doctor", "coco.json", "--out", "afile/r.md"], data), "afile", "is a file")
    assert (data / "afile").read_text() == "x" and list((data / "adir").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(data):
    (data / "ro").mkdir()
    (data / "ro").chmod(0o555)
    try:
        one_clean_line(run(["export", "rle-csv", "coco.json", "--order", "row", "--out", "ro/x.csv"], data),
                       "ro/x.csv", "Permission denied")
    finally:
        (data / "ro").chmod(0o755)


def test_real_data_full_disk(tmp_path):
    source = shared("cxr-lungs")
    result = run(["convert", "masks", str(source / "images"), str(source / "masks"), "--allow-missing-masks",
                  "--out", str(tmp_path / "c.json")], tmp_path, file_size_limit=4096)
    one_clean_line(result, "c.json", "File too large")
    no_temp_files(tmp_path)
