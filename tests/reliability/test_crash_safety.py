"""Crash safety: a conversion killed with SIGKILL never leaves a partial output file.

A real ``python -m cococxr convert rle-csv`` subprocess is killed mid-way (once it has
started decoding) and while it writes (as soon as its temporary output file appears). The
output path must then hold nothing or the previous complete file, no stray temp file may
be visible as the output, and a rerun completes and gives a valid file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cococxr.atomic import atomic_open
from cococxr.coco import CocoDataset
from helpers import REPO

IMAGES = 300
TIMEOUT = 240  # seconds per subprocess; a loaded CI machine is slow, an idle one takes a few


def _write_csv(path: Path, seed: int) -> None:
    """A column-major Kaggle RLE CSV: 3 instances per 256x256 image, 40 runs each."""
    rng = np.random.default_rng(seed)
    grid = np.arange(1, 256 * 256 - 100, 50)
    lines = ["ImageId,EncodedPixels"]
    for i in range(IMAGES):
        for _ in range(3):
            starts = np.sort(rng.choice(grid, 40, replace=False))
            lengths = rng.integers(1, 40, 40)
            lines.append(f"img{i:05d}," + " ".join(f"{s} {n}" for s, n in zip(starts, lengths)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _command(csv: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "cococxr", "convert", "rle-csv", str(csv), "--order", "column",
            "--height", "256", "--width", "256", "--instances", "--indent", "1", "-o", str(out)]


def _environment() -> dict:
    env = dict(os.environ, COCOCXR_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _temp_files(folder: Path, out: Path) -> list[Path]:
    """atomic_open's temporary files for ``out`` (``.<name>.<random>.tmp``)."""
    return [p for p in folder.iterdir() if p.name.startswith(f".{out.name}.") and p.name.endswith(".tmp")]


def _visible(folder: Path) -> list[str]:
    """Files a user (or a glob for *.json) sees: hidden temp files excluded."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _run_and_kill(csv: Path, out: Path, moment: str) -> None:
    """Start the conversion and SIGKILL it (unless it finished first).

    Args:
        moment: ``"decoding"`` (once its progress bar shows) or ``"writing"`` (as soon as
            the temporary output file exists).
    """
    stale = set(_temp_files(out.parent, out))  # left by an earlier kill
    process = subprocess.Popen(_command(csv, out), env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    decoding = threading.Event()

    def watch_progress() -> None:
        for chunk in iter(lambda: process.stderr.read(64), b""):
            if b"decoding RLE" in chunk:
                decoding.set()

    threading.Thread(target=watch_progress, daemon=True).start()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if decoding.is_set() if moment == "decoding" else set(_temp_files(out.parent, out)) - stale:
                break
            time.sleep(0.001)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:  # pragma: no cover - only if the wait above timed out
            os.killpg(process.pid, signal.SIGKILL)


def _complete(out: Path) -> bytes:
    """The output's bytes, checked to be a complete, valid file of the conversion."""
    dataset = CocoDataset(out, out.parent.parent)  # the CSV's folder, outside the file's own
    assert len(dataset.imgs) == IMAGES and len(dataset.anns) == 3 * IMAGES
    return out.read_bytes()


@pytest.mark.timeout(5 * TIMEOUT)
def test_killed_conversion_never_leaves_a_partial_file(tmp_path):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    _write_csv(first, seed=1)
    _write_csv(second, seed=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "coco.json"

    for moment in ("decoding", "writing"):  # no previous file: nothing, or (kill too late) a complete one
        _run_and_kill(first, out, moment)
        assert _visible(out_dir) in ([], ["coco.json"])
        if out.exists():
            _complete(out)
            out.unlink()

    result = subprocess.run(_command(first, out), env=_environment(), capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    previous = _complete(out)
    assert _visible(out_dir) == ["coco.json"]

    _run_and_kill(second, out, "writing")  # a previous complete file: it stays, or is fully replaced
    assert _visible(out_dir) == ["coco.json"]
    if out.read_bytes() != previous:
        _complete(out)


def test_killed_slow_writer_never_exposes_a_partial_file(tmp_path):
    """Deterministic: a writer killed between two chunks of atomic_open leaves the old file."""
    target = tmp_path / "data.json"
    target.write_text('{"complete": true}\n')
    script = ("import sys, time\nfrom cococxr.atomic import atomic_open\n"
              "with atomic_open(sys.argv[1]) as fh:\n"
              "    fh.write('{\"partial\": ')\n    fh.flush()\n    print('written', flush=True)\n"
              "    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], env=_environment(),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "written"
        assert len(_temp_files(tmp_path, target)) == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert target.read_text() == '{"complete": true}\n'
    assert _visible(tmp_path) == ["data.json"]
    with atomic_open(target) as fh:  # the next write works beside the stale temp file
        fh.write('{"rewritten": true}\n')
    assert target.read_text() == '{"rewritten": true}\n'
