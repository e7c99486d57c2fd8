"""Class 9 of issue 17: signals during a ``--workers 2`` run of the real CLI.

``export masks`` writes one PNG per image from its workers (atomically, through temporary
files); mid-run, the parent gets SIGINT, SIGTERM or SIGKILL. Afterwards no process of the
run's group may be alive and no temporary file may remain.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")

N_IMAGES, SIZE = 600, 1536


def big_dataset(folder: Path) -> Path:
    """A COCO file of many large images (export masks never reads them, only their records)."""
    images = [{"id": i, "file_name": f"img{i:04d}.png", "height": SIZE, "width": SIZE} for i in range(1, N_IMAGES + 1)]
    polygon = [[10, 10, SIZE - 10, 40, SIZE - 40, SIZE - 10, 30, SIZE - 30]]
    anns = [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "segmentation": polygon,
             "bbox": [10, 10, SIZE - 20, SIZE - 20], "area": float((SIZE - 30) ** 2)} for i in range(1, N_IMAGES + 1)]
    path = folder / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "lung"}]}))
    return path


def group_alive(pgid: int) -> list[int]:
    """Pids still in process group ``pgid`` (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    coco = big_dataset(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "COCOCXR_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "cococxr", "export", "masks", str(coco), "--out", str(out),
                             "--workers", "2"], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # mid-run: the workers have written some masks
        if out.is_dir() and len(list(out.glob("*.png"))) >= 5:
            return proc, out
        if proc.poll() is not None:
            pytest.fail(f"finished before the signal: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail("no mask written in 120 s")


def wait_gone(pgid: int, seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return group_alive(pgid)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_and_terminate_clean_up(sig, code, tmp_path):
    proc, out = start(tmp_path)
    assert len(group_alive(proc.pid)) >= 3, "parent and two workers"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "no partial output" in stderr
    assert wait_gone(proc.pid) == []
    assert temp_files(tmp_path) == []
    assert len(list(out.glob("*.png"))) < N_IMAGES and not (out / "class_map.json").exists()


def test_workers_die_with_a_killed_parent(tmp_path):
    proc, out = start(tmp_path)
    workers = [pid for pid in group_alive(proc.pid) if pid != proc.pid]
    assert len(workers) >= 2
    proc.kill()
    proc.communicate(timeout=30)
    assert wait_gone(proc.pid) == [], "workers outlived their parent"
    assert temp_files(tmp_path) == []
