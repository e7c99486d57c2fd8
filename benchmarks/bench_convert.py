"""Benchmark: image + mask folders -> COCO, cococxr vs datumaro, on real hand-drawn lung masks.

The 267 hand-drawn masks of ``../shared/data/cxr-lungs`` are replicated (symlinked images,
index masks 0/1) into a temporary folder laid out the way datumaro's
``common_semantic_segmentation`` format expects (``images/``, ``masks/``,
``dataset_meta.json`` listing ``background`` and ``lung``) until there are >= 1,000 pairs.
Both tools convert the same files:

- cococxr: ``convert_mask_folders(..., class_map={1: "lung"}, workers=1 and 2)``;
- datumaro: ``Dataset.import_from(..., "common_semantic_segmentation").export(..., "coco_instances")``,
  run in its own virtual environment (``.bench/venv-datumaro``, created with
  ``python3 -m venv`` + ``pip install datumaro`` when missing; it is never a dependency
  of cococxr).

Timings exclude interpreter start and imports; each figure is the best of ``--repeat``
runs, the tools' runs interleaved so that they see the same machine load. CPU
milliseconds per image (workers included) are printed too: on a shared machine they vary
less than wall time. Losslessness is checked by decoding every cococxr annotation of the first replica
and comparing it with the source mask.

Usage: ``python benchmarks/bench_convert.py [--quick] [--copies N] [--no-datumaro]``
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COCOCXR_SHARED_DATA", REPO.parent / "shared" / "data")) / "cxr-lungs"
VENV = REPO / ".bench" / "venv-datumaro"

DATUMARO_SCRIPT = """
import json, sys, time
from datumaro.components.dataset import Dataset
src, out = sys.argv[1], sys.argv[2]
start, cpu = time.perf_counter(), time.process_time()
dataset = Dataset.import_from(src, "common_semantic_segmentation")
dataset.export(out, "coco_instances", save_media=False)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "items": len(dataset)}))
"""


def build_layout(root: Path, copies: int) -> list[tuple[str, Path]]:
    """Replicate the masked cxr-lungs images ``copies`` times; return (stem, source mask) pairs."""
    from cococxr.io import read_mask, write_png

    sources = sorted((DATA / "masks").glob("*.png"))
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset_meta.json").write_text(json.dumps({"labels": ["background", "lung"]}))
    pairs = []
    for source in sources:
        index_mask = root / "index" / source.name
        write_png(index_mask, (read_mask(source) != 0).astype(np.uint8))
        for k in range(copies):
            stem = f"{source.stem}__{k}"
            (root / "images" / f"{stem}.png").symlink_to(DATA / "images" / source.name)
            (root / "masks" / f"{stem}.png").symlink_to(index_mask)
            pairs.append((stem, source))
    return pairs


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_cococxr(root: Path, out: Path, workers: int) -> tuple[float, float]:
    """Wall time and CPU time of one ``convert_mask_folders`` run with ``workers`` processes."""
    from cococxr.converters.mask_folders import convert_mask_folders

    start, cpu = time.perf_counter(), _cpu_seconds()
    convert_mask_folders(root / "images", root / "masks", out, class_map={1: "lung"}, workers=workers)
    return time.perf_counter() - start, _cpu_seconds() - cpu


def check_lossless(out: Path, pairs: list[tuple[str, Path]]) -> int:
    """Compare decoded annotations of the first replica with the source masks; return mismatches."""
    from cococxr.coco import CocoDataset
    from cococxr.io import read_mask
    from cococxr.masks import annotations_to_channels

    dataset = CocoDataset(out)
    by_name = {img["file_name"]: image_id for image_id, img in dataset.imgs.items()}
    lung = dataset.cat_id("lung")
    bad = 0
    for stem, source in pairs:
        if not stem.endswith("__0"):
            continue
        image_id = by_name[f"{stem}.png"]
        img = dataset.imgs[image_id]
        mask = annotations_to_channels(dataset.anns_for(image_id), img["height"], img["width"], [lung])[:, :, 0]
        bad += not np.array_equal(mask, (read_mask(source) != 0).astype(np.uint8))
    return bad


def ensure_datumaro() -> tuple[Path | None, str]:
    """The datumaro venv's python, creating it when missing; (None, why) when impossible."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} and installing datumaro (one time) ...", flush=True)
        for command in ([sys.executable, "-m", "venv", str(VENV)],
                        [str(python), "-m", "pip", "install", "-q", "datumaro"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                return None, f"{' '.join(command[:4])} failed: {(done.stderr or done.stdout).strip()[-400:]}"
    done = subprocess.run([str(python), "-c", "import datumaro"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"datumaro does not import: {done.stderr.strip()[-400:]}"
    return python, ""


def time_datumaro(python: Path, root: Path, out: Path) -> tuple[float, float, dict]:
    """Wall and CPU time of one datumaro conversion and facts about its output.

    Raises:
        RuntimeError: datumaro failed (its error output is in the message).
    """
    done = subprocess.run([str(python), "-c", DATUMARO_SCRIPT, str(root), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"datumaro failed: {done.stderr.strip()[-600:]}")
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    data = json.loads((out / "annotations" / "instances_default.json").read_text())
    facts = {"images": len(data["images"]), "annotations": len(data["annotations"]),
             "categories": [c["name"] for c in data["categories"]],
             "iscrowd": sorted({str(a["iscrowd"]) for a in data["annotations"]}),
             "bytes": (out / "annotations" / "instances_default.json").stat().st_size}
    return timing["seconds"], timing["cpu"], facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one replica (267 files), one run each")
    parser.add_argument("--copies", type=int, default=4, help="replicas of the 267 masks (default 4: 1,068 files)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool; the best counts (default 2)")
    parser.add_argument("--no-datumaro", action="store_true", help="time cococxr only")
    args = parser.parse_args(argv)
    if not (DATA / "masks").is_dir():
        print(f"benchmark data {DATA} not found (../shared/data is not beside this checkout)")
        return 1
    copies, repeat = (1, 1) if args.quick else (args.copies, args.repeat)
    os.environ["COCOCXR_PROGRESS"] = "0"
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        root = Path(tmp) / "data"
        pairs = build_layout(root, copies)
        n = len(pairs)
        print(f"{n} image+mask pairs ({len(pairs) // copies} hand-drawn cxr-lungs masks x {copies})")
        python, why = (None, "--no-datumaro") if args.no_datumaro else ensure_datumaro()
        best: dict[str, tuple[float, float]] = {}
        facts: dict = {}
        for k in range(repeat):  # interleaved, so that both tools see the same machine load
            for workers in (1, 2):
                timing = time_cococxr(root, Path(tmp) / f"cococxr_w{workers}.json", workers)
                best[f"w{workers}"] = min(best.get(f"w{workers}", timing), timing)
            if python is not None:
                try:
                    *timing, facts = time_datumaro(python, root, Path(tmp) / f"datumaro{k}")
                    best["datumaro"] = min(best.get("datumaro", tuple(timing)), tuple(timing))
                except RuntimeError as exc:
                    python, why = None, str(exc)
        for workers in (1, 2):
            seconds, cpu = best[f"w{workers}"]
            print(f"cococxr  --workers {workers}: {seconds:7.2f} s  {n / seconds:8.1f} images/s  "
                  f"({1000 * cpu / n:.2f} CPU ms per image)")
        same = (Path(tmp) / "cococxr_w1.json").read_bytes() == (Path(tmp) / "cococxr_w2.json").read_bytes()
        bad = check_lossless(Path(tmp) / "cococxr_w1.json", pairs)
        size = (Path(tmp) / "cococxr_w1.json").stat().st_size
        print(f"cococxr output: workers 1 and 2 byte-identical: {same}; lossless: {bad} of "
              f"{len(pairs) // copies} masks differ; {size / 1e6:.1f} MB; compressed RLE, iscrowd 0, "
              "no background annotation")
        if "datumaro" not in best:
            print(f"datumaro: not timed ({why})")
            return 0 if same and not bad else 1
        seconds, cpu = best["datumaro"]
        print(f"datumaro common_semantic_segmentation -> coco_instances: {seconds:7.2f} s  "
              f"{n / seconds:8.1f} images/s  ({1000 * cpu / n:.2f} CPU ms per image)")
        print(f"datumaro output: {facts['annotations']} annotations for {facts['images']} images, categories "
              f"{facts['categories']}, iscrowd {facts['iscrowd']}, {facts['bytes'] / 1e6:.1f} MB: every mask is "
              "exported with iscrowd=1 (uncompressed RLE) and the background is an annotation of its own")
        for workers in (1, 2):
            print(f"speed-up vs datumaro, --workers {workers}: {seconds / best[f'w{workers}'][0]:.1f}x images/s, "
                  f"{cpu / best[f'w{workers}'][1]:.1f}x less CPU per image")
    return 0 if same and not bad else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
