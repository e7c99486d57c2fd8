"""Benchmark: a UW-Madison-sized dataset end to end, each step's cost and how it grows.

From the 251 hand-drawn lung masks of ``../shared/data/cxr-lungs`` (and their images),
synthesises datasets of about 2k, 8k and 33k annotations (1k, 4k and 16.5k images; the
UW-Madison training set has 16,590 images and 33,913 annotations) in two real formats:

- a UW-Madison Kaggle RLE CSV (``id,class,segmentation``, row-major RLE, three rows per
  slice, ids ``caseC_dayD_slice_SSSS``, images ``train/caseC/caseC_dayD/scans/
  slice_SSSS_W_H_1.50_1.50.png``): the right lung stands in for ``large_bowel``, the left
  for ``small_bowel``, and ``stomach`` is an empty row, as most UW rows are;
- a mask-folder tree (``images/``, ``masks/`` with index masks 0/1, ``dataset_meta.json``),
  converted in instance mode (one annotation per lung).

Images and masks are hard links to one written copy per source (no disk growth). Each
step runs in a fresh child process; the time excludes the interpreter and its imports
and the peak RSS covers the child and its workers. Steps: convert (RLE CSV, mask folders;
1 and 2 workers; the RLE CSV on a Dask LocalCluster of 2), validate, inspect, doctor, split
by case, merge, one Sequence epoch (256 px, batch 16; 1 and 2 threads, 2 processes; cache off, and
with the cache its filling epoch and the next), predict (a small lung U-Net at 128 px) and
evaluate (COCO AP + Dice), COCO AP alone through ``coco_evaluate`` with each evaluator (the
speed-up and the largest difference of the 12 statistics printed), plus the peers: pycocotools (index load, COCOeval),
faster-coco-eval (the same), datumaro (mask folders -> coco_instances; its own venv, see
bench_convert.py). Then prints each step's growth exponent k (cost ~ n^k) between sizes.

Usage: python benchmarks/bench_scale.py [--quick] [--sizes 2000,8000,33000] [--only WORDS] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COCOCXR_SHARED_DATA", REPO.parent / "shared" / "data")) / "cxr-lungs"
SLICES_PER_DAY, DAYS_PER_CASE = 100, 2
RSS_LIMIT_MB = 2048


# ------------------------------------------------------------------ synthesis
def lung_halves(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image's right and left lung: the mask's part left and right of its middle column."""
    middle = mask.shape[1] // 2
    right, left = np.zeros_like(mask), np.zeros_like(mask)
    right[:, :middle], left[:, middle:] = mask[:, :middle], mask[:, middle:]
    return right, left


def sources() -> list[dict]:
    """Every cxr-lungs image with a non-empty mask split into two non-empty halves, with its RLE rows."""
    from cococxr.io import read_mask
    from cococxr.rle import kaggle_rle_encode

    found = []
    for mask_path in sorted((DATA / "masks").glob("*.png")):
        mask = (read_mask(mask_path) != 0).astype(np.uint8)
        right, left = lung_halves(mask)
        if right.any() and left.any():
            found.append({"name": mask_path.name, "mask": mask, "shape": mask.shape,
                          "rle": (kaggle_rle_encode(right, "row"), kaggle_rle_encode(left, "row"))})
    return found


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)


def synthesise(root: Path, n_images: int, found: list[dict]) -> dict:
    """Write the RLE CSV tree and the mask-folder tree of ``n_images`` images under ``root``."""
    from cococxr.io import write_png

    originals = root.parent / "originals"
    if not originals.exists():  # one private copy per source: hard links need the same file system
        for item in found:
            copy_file(DATA / "images" / item["name"], originals / "images" / item["name"])
            write_png(originals / "masks" / item["name"], item["mask"])
    lines = ["id,class,segmentation"]
    tree = root / "tree"
    (tree / "images").mkdir(parents=True)
    (tree / "masks").mkdir()
    (tree / "dataset_meta.json").write_text(json.dumps({"labels": ["background", "lung"]}))
    for k in range(n_images):
        item = found[k % len(found)]
        case, rest = divmod(k, SLICES_PER_DAY * DAYS_PER_CASE)
        day, slc = divmod(rest, SLICES_PER_DAY)
        height, width = item["shape"]
        kid = f"case{case + 1}_day{day + 1}_slice_{slc + 1:04d}"
        scans = root / "uw" / "train" / f"case{case + 1}" / f"case{case + 1}_day{day + 1}" / "scans"
        link(originals / "images" / item["name"], scans / f"slice_{slc + 1:04d}_{width}_{height}_1.50_1.50.png")
        lines += [f"{kid},large_bowel,{item['rle'][0]}", f"{kid},small_bowel,{item['rle'][1]}", f"{kid},stomach,"]
        stem = f"{kid}.png"
        link(originals / "images" / item["name"], tree / "images" / stem)
        link(originals / "masks" / item["name"], tree / "masks" / stem)
    (root / "uw" / "train.csv").write_text("\n".join(lines) + "\n")
    return {"csv": str(root / "uw" / "train.csv"), "tree": str(tree), "images": n_images}


def copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


# ------------------------------------------------------------------ child steps
def _peak_mb() -> float:
    """Peak RSS of this process (VmHWM) and of its finished children, in MB.

    Not ``RUSAGE_SELF``: Linux keeps ``ru_maxrss`` across exec, so a child would report
    at least its parent's peak.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        status = Path("/proc/self/status").read_text()
        own = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    except (OSError, StopIteration, ValueError):  # not Linux: ru_maxrss, an upper bound
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _cli(argv: list[str]) -> None:
    from cococxr.cli import main

    code = main(argv)
    if code not in (0, 1):  # validate exits 1 on errors: reported, not fatal here
        raise SystemExit(f"cococxr {' '.join(argv)} exited with {code}")


def _epoch(coco: str, root: str, threads: int, cache: bool, processes: int = 0) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from cococxr.batches import ProcessLoader
    from cococxr.coco import CocoDataset
    from cococxr.sequences import CocoSegmentationSequence

    seq = CocoSegmentationSequence(CocoDataset(coco, root), ["lung"], batch_size=16, input_size=(256, 256),
                                   shuffle=False, cache=cache)
    if processes:  # the workers' start (a fork) is in the time
        start = time.perf_counter()
        with ProcessLoader(seq, workers=processes) as loader:
            for _ in loader:
                pass
        return {"seconds": time.perf_counter() - start, "second_epoch": None}
    times = []
    for _ in range(2 if cache else 1):
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(seq.__getitem__, range(len(seq))):
                pass
        times.append(time.perf_counter() - start)
    return {"seconds": times[0], "second_epoch": times[1] if cache else None}


def _peer_eval(kind: str, gt: str, results: str) -> dict:
    if kind == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        coco = COCO(gt)
        loaded = time.perf_counter() - start
        evaluator = COCOeval(coco, coco.loadRes(results), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"index_seconds": loaded, "seconds": time.perf_counter() - start, "AP": float(evaluator.stats[0])}


def _coco_ap(evaluator: str, gt: str, results: str) -> dict:
    """``coco_evaluate`` of the predicted masks with one evaluator; the JSON reading not timed."""
    from cococxr.coco import CocoDataset
    from cococxr.metrics import coco_evaluate

    dataset = CocoDataset(gt, validate=False)
    predicted = json.loads(Path(results).read_text())
    start = time.perf_counter()
    stats = coco_evaluate(dataset, predicted, "segm", evaluator=evaluator)
    return {"seconds": time.perf_counter() - start, "AP": stats["AP"], "stats": stats}


def child(step: str, args: dict) -> None:
    """Run one step and print ``{"seconds", "rss_mb", ...}`` as the last line."""
    os.environ["COCOCXR_PROGRESS"] = "0"
    extra: dict = {}
    if step in ("predict", "evaluate"):
        import cococxr._tf  # noqa: F401  (TensorFlow's import is not the step's cost)
        import cococxr.pipelines.segmentation.evaluate  # noqa: F401
        import cococxr.pipelines.segmentation.predict  # noqa: F401
    if step == "dask":
        from dask.distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
            start = time.perf_counter()
            _cli(["--dask-scheduler", cluster.scheduler_address, *args["argv"]])
            seconds = time.perf_counter() - start
    elif step == "epoch":
        extra = _epoch(args["coco"], args["root"], args["threads"], args["cache"], args.get("processes", 0))
        seconds = extra.pop("seconds")
    elif step in ("pycocotools", "faster-coco-eval"):
        extra = _peer_eval(step, args["gt"], args["results"])
        seconds = extra.pop("seconds")
    elif step == "coco_evaluate":
        extra = _coco_ap(args["evaluator"], args["gt"], args["results"])
        seconds = extra.pop("seconds")
    else:
        import cococxr.cli  # noqa: F401
        import cococxr.converters.commands  # noqa: F401

        start = time.perf_counter()
        _cli(args["argv"])
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": _peak_mb(), **extra}))


def run_child(step: str, args: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", step, json.dumps(args)],
                          capture_output=True, text=True, env={**os.environ, "COCOCXR_PROGRESS": "0"})
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the steps of one size
def train_model(work: Path, train_json: str) -> str:
    """A small lung U-Net (128 px, one minute) for the predict/evaluate steps; not timed."""
    subprocess.run([sys.executable, "-m", "cococxr", "train", "segmentation", "--train", train_json,
                    "--val", train_json, "--arch", "plain_unet", "--filters", "8", "16", "32", "64", "--input-size", "128",
                    "--epochs", "5", "--max-train-seconds", "60", "--no-tensorboard", "--out", str(work / "model-run")],
                   check=True, capture_output=True, env={**os.environ, "COCOCXR_PROGRESS": "0"})
    return str(work / "model-run" / "model.h5")


def steps_for(size_dir: Path, made: dict, model: str) -> list[tuple[str, str, dict]]:
    # each COCO file beside its images' folder: a file may only name an image root inside its own folder
    out, uw, tree = size_dir / "out", size_dir / "uw", made["tree"]
    out.mkdir(exist_ok=True)
    csv = made["csv"]
    rle_json, masks_json = str(uw / "rle_w1.json"), f"{tree}/masks_w1.json"
    rle_convert = ["convert", "rle-csv", csv, "--preset", "uw-madison"]
    masks_convert = ["convert", "masks", f"{tree}/images", f"{tree}/masks", "--class-map", "1=lung", "--instances"]
    steps = [
        ("convert rle-csv, 1 worker", "cli", {"argv": [*rle_convert, "--out", rle_json]}),
        ("convert rle-csv, 2 workers", "cli", {"argv": [*rle_convert, "--workers", "2", "--out", str(uw / "rle_w2.json")]}),
        ("convert rle-csv, Dask 2 workers", "dask", {"argv": [*rle_convert, "--out", str(uw / "rle_dask.json")]}),
        ("convert masks, 1 worker", "cli", {"argv": [*masks_convert, "--out", masks_json]}),
        ("convert masks, 2 workers", "cli", {"argv": [*masks_convert, "--workers", "2", "--out", f"{tree}/masks_w2.json"]}),
        ("validate", "cli", {"argv": ["validate", rle_json]}),
        ("inspect", "cli", {"argv": ["inspect", rle_json]}),
        ("doctor", "cli", {"argv": ["doctor", rle_json, "--out", str(out / "doctor.md")]}),
        ("split by case", "cli", {"argv": ["split", rle_json, "--by", "case", "--fractions", "train=0.8,val=0.2",
                                           "--out-dir", str(uw)]}),
        ("merge", "cli", {"argv": ["merge", str(uw / "train.json"), str(uw / "val.json"),
                                   "--out", str(uw / "merged.json")]}),
        ("Sequence epoch, 1 thread", "epoch", {"coco": masks_json, "root": None, "threads": 1, "cache": False}),
        ("Sequence epoch, 2 threads", "epoch", {"coco": masks_json, "root": None, "threads": 2, "cache": False}),
        ("Sequence epoch, 2 threads, cache", "epoch", {"coco": masks_json, "root": None, "threads": 2, "cache": True}),
        ("Sequence epoch, 2 processes", "epoch", {"coco": masks_json, "root": None, "threads": 0, "cache": False,
                                                  "processes": 2}),
        ("predict", "cli", {"argv": ["predict", "segmentation", model, masks_json, "--format", "none", "--instances",
                                     "--coco-out", str(out / "predicted.json")]}),
        ("evaluate (AP + Dice)", "cli", {"argv": ["evaluate", "segmentation", model, "--coco", masks_json, "--out",
                                                  str(out / "evaluation")]}),
        ("COCO AP (coco_evaluate), pycocotools", "coco_evaluate",
         {"evaluator": "pycocotools", "gt": masks_json, "results": str(out / "predicted.json")}),
        ("COCO AP (coco_evaluate), faster-coco-eval", "coco_evaluate",
         {"evaluator": "faster-coco-eval", "gt": masks_json, "results": str(out / "predicted.json")}),
        ("peer: pycocotools index + COCOeval", "pycocotools", {"gt": masks_json, "results": str(out / "predicted.json")}),
        ("peer: faster-coco-eval index + COCOeval", "faster-coco-eval", {"gt": masks_json, "results": str(out / "predicted.json")}),
    ]
    return steps


def time_datumaro(python, tree: str, out: Path) -> dict:
    """datumaro's mask folders -> coco_instances, wall time and peak RSS (its own process)."""
    import bench_convert

    start = time.perf_counter()
    proc = subprocess.Popen([str(python), "-c", bench_convert.DATUMARO_SCRIPT, tree, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout = proc.stdout.read()
    if status != 0:
        return {"error": proc.stderr.read().strip()[-300:]}
    timing = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": timing["seconds"], "rss_mb": usage.ru_maxrss / 1024, "wall_with_start": wall}


def exponent(small: float, large: float, n_small: int, n_large: int) -> float | None:
    if not small or not large or small <= 0 or large <= 0:
        return None
    return math.log(large / small) / math.log(n_large / n_small)


def count_annotations(path: str) -> int:
    return len(json.loads(Path(path).read_text())["annotations"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="2000,8000,33000", help="target annotation counts")
    parser.add_argument("--quick", action="store_true", help="sizes 400 and 1600 only")
    parser.add_argument("--no-datumaro", action="store_true")
    parser.add_argument("--only", help="run only the steps whose name contains one of these comma-separated words")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return 0
    if not (DATA / "masks").is_dir():
        print(f"benchmark data {DATA} not found (../shared/data is not beside this checkout)")
        return 1
    targets = [400, 1600] if args.quick else [int(s) for s in args.sizes.split(",")]
    sys.path.insert(0, str(Path(__file__).parent))
    python = None
    if not args.no_datumaro:
        import bench_convert

        python, why = bench_convert.ensure_datumaro()
        if python is None:
            print(f"datumaro: not timed ({why})")
    found = sources()
    table: dict[str, dict[int, dict]] = {}
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        work = Path(tmp)
        for target in targets:
            size_dir = work / f"n{target}"
            made = synthesise(size_dir, target // 2, found)
            if not sizes:
                train_json = f"{made['tree']}/train.json"
                subprocess.run([sys.executable, "-m", "cococxr", "convert", "masks", f"{made['tree']}/images",
                                f"{made['tree']}/masks", "--class-map", "1=lung", "--out", train_json],
                               check=True, capture_output=True)
                model = train_model(work, train_json)
            steps = steps_for(size_dir, made, model)
            n_ann = None
            wanted = [w.strip() for w in args.only.split(",")] if args.only else None
            for name, kind, step_args in steps:
                if wanted and not any(w in name for w in wanted) and name != steps[0][0]:
                    continue  # the first step (convert rle-csv) makes the file the others read
                result = run_child(kind, step_args)
                if n_ann is None and "error" not in result:
                    n_ann = count_annotations(step_args["argv"][-1])
                table.setdefault(name, {})[target] = result
                shown = result.get("error") or f"{result['seconds']:8.2f} s  peak RSS {result['rss_mb']:7.0f} MB"
                print(f"[{target:>6}] {name:42} {shown}", flush=True)
            if python is not None and (not wanted or "datumaro" in wanted):
                result = time_datumaro(python, made["tree"], size_dir / "datumaro")
                table.setdefault("peer: datumaro mask folders -> coco_instances", {})[target] = result
                shown = result.get("error") or f"{result['seconds']:8.2f} s  peak RSS {result['rss_mb']:7.0f} MB"
                print(f"[{target:>6}] {'peer: datumaro mask folders -> coco':42} {shown}", flush=True)
            same = all((size_dir / "uw" / f"rle_{k}.json").read_bytes() == (size_dir / "uw" / "rle_w1.json").read_bytes()
                       for k in ("w2", "dask") if (size_dir / "uw" / f"rle_{k}.json").exists())
            print(f"[{target:>6}] {n_ann} annotations, {made['images']} images; RLE outputs 1 worker / 2 workers / "
                  f"Dask byte-identical: {same}", flush=True)
            sizes.append({"target": target, "annotations": n_ann, "images": made["images"], "identical": same})
    print_table(table, sizes)
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "steps": table}, indent=1))
    return 0


def print_table(table: dict, sizes: list[dict]) -> None:
    targets = [s["target"] for s in sizes]
    counts = {s["target"]: s["annotations"] or s["target"] for s in sizes}
    head = " | ".join(f"{counts[t]:,} ann: s / MB" for t in targets)
    print(f"\n| step | {head} | k (cost ~ n^k) |")
    print("|---|" + "---|" * len(targets) + "---|")
    for name, by_size in table.items():
        cells = []
        for t in targets:
            r = by_size.get(t, {})
            cells.append("error" if "error" in r else f"{r['seconds']:.2f} / {r['rss_mb']:.0f}" if r else "")
        ks = [exponent(by_size.get(a, {}).get("seconds"), by_size.get(b, {}).get("seconds"), counts[a], counts[b])
              for a, b in zip(targets, targets[1:])]
        over = any(r.get("rss_mb", 0) > RSS_LIMIT_MB for r in by_size.values())
        k_text = ", ".join("-" if k is None else f"{k:.2f}" for k in ks)
        print(f"| {name} | " + " | ".join(cells) + f" | {k_text}{' (RSS > 2 GB)' if over else ''} |")
    print_speed_ups(table, counts)
    for name, by_size in table.items():
        second = {t: r.get("second_epoch") for t, r in by_size.items() if r.get("second_epoch")}
        if second:
            print(f"{name}: second (cached) epoch " + ", ".join(f"{counts[t]:,} ann {s:.2f} s" for t, s in second.items()))


def print_speed_ups(table: dict, counts: dict) -> None:
    """faster-coco-eval against pycocotools through ``coco_evaluate``: speed-up and AP difference."""
    from cococxr.metrics import COCO_STAT_NAMES

    slow, fast = (table.get(f"COCO AP (coco_evaluate), {e}", {}) for e in ("pycocotools", "faster-coco-eval"))
    for target in sorted(slow.keys() & fast.keys()):
        a, b = slow[target], fast[target]
        if "error" in a or "error" in b:
            continue
        diff = max(abs((a["stats"][k] or 0) - (b["stats"][k] or 0)) for k in COCO_STAT_NAMES)
        print(f"COCO AP at {counts[target]:,} ann: faster-coco-eval {a['seconds'] / b['seconds']:.2f}x pycocotools, "
              f"AP {a['AP']:.4f}, largest difference of the 12 statistics {diff:.1e}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
