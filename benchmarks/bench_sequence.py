"""Throughput and memory of CocoSegmentationSequence on the real cxr-lungs masks.

Compares, at 256x256, batch 16, one class ("lung"):
  (a) CocoSegmentationSequence: one thread, two enqueuer threads, and as_tf_dataset();
  (b) the Kaggle kernel's DataGeneratorFromCocoJson approach, re-implemented faithfully
      (pycocotools getAnnIds + annToMask per item and category, cv2 resize of the mask,
      float64 arrays);
  (c) the limit: reading and resizing the images only (and, as the ceiling of any
      two-thread loader on this machine, the same in a pool of two threads);
  (a) also through the ProcessLoader (2 worker processes writing into shared memory),
      iterated and through the tf-keras ProcessSequence as fit(workers=1) asks for batches;
  (d) the other adapters over the same core, each in a fresh process (torch and Keras 3
      never share a process with tf-keras): the torch DataLoader with 2 worker processes
      and the Keras 3 PyDataset with 2 workers (threads and processes), as ratios to (c).
Then streams a COCO file of 20,000 images (the real records repeated) in a subprocess
and reports its peak RSS.

Usage: python benchmarks/bench_sequence.py [--quick] [--data ../shared/data/cxr-lungs]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cococxr.batches import ProcessLoader
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.io import read_image
from cococxr.preprocess import resize_image

SIZE = (256, 256)
BATCH = 16
TARGETS = {"a/c one worker": 0.9, "a/b": 1.6, "a/c two workers": 1.6}
RSS_LIMIT_MB = 1024


class KaggleGenerator:
    """The kernel's generator, defects kept: per-category annToMask at full size, float64."""

    def __init__(self, ann_file: Path, image_root: Path, image_list: list[dict], classes: list[str]):
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann_file))
        self.image_root, self.image_list, self.classes = image_root, image_list, classes
        self.catIds = self.coco.getCatIds(catNms=classes)
        self.cats = self.coco.loadCats(self.catIds)

    def __len__(self) -> int:
        return int(len(self.image_list) / BATCH)

    def getNormalMask(self, image_id, catIds):  # noqa: N802, N803  (the kernel's names)
        anns = self.coco.loadAnns(self.coco.getAnnIds(image_id, catIds=catIds, iscrowd=None))
        cats = self.coco.loadCats(catIds)
        train_mask = np.zeros(SIZE, dtype=np.uint8)
        for ann in anns:
            name = next(c["name"] for c in cats if c["id"] == ann["category_id"])
            pixel_value = self.classes.index(name) + 1
            new_mask = cv2.resize(self.coco.annToMask(ann) * pixel_value, SIZE)
            train_mask = np.maximum(new_mask, train_mask)
        return train_mask

    def getImage(self, path):  # noqa: N802
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return cv2.resize(image, SIZE).astype(np.float32) / 255.0

    def __getitem__(self, index):
        X = np.empty((BATCH, *SIZE, 3))  # noqa: N806
        y = np.empty((BATCH, *SIZE, len(self.catIds)))
        for i, info in enumerate(self.image_list[index * BATCH:(index + 1) * BATCH]):
            X[i] = self.getImage(self.image_root / info["file_name"])
            masks = [self.getNormalMask(info["id"], cat_id) for cat_id in self.catIds]
            for j in self.catIds:
                y[i, :, :, j - 1] = masks[j - 1]
        return X, y


def read_and_resize(paths: list[Path]) -> int:
    """(c): decode and resize every image, stacked in batches; returns the image count."""
    for start in range(0, len(paths), BATCH):
        np.stack([resize_image(read_image(p), SIZE) for p in paths[start:start + BATCH]])
    return len(paths)


def read_and_resize_threads(paths: list[Path], threads: int) -> int:
    """(c) in a pool of ``threads``: this machine's ceiling for any parallel loader."""
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(paths), BATCH):
            np.stack(list(pool.map(lambda p: resize_image(read_image(p), SIZE), paths[start:start + BATCH])))
    return len(paths)


def pooled(seq, threads: int, epochs: int):
    """The batches of ``epochs`` passes in order from a plain thread pool (no epoch-end drain)."""
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(seq.__getitem__, [i for _ in range(epochs) for i in range(len(seq))])


def iterate(batches) -> int:
    """Consume batches; return the number of images."""
    return sum(len(batch[0]) for batch in batches)


def enqueued(seq, workers: int, epochs: int):
    """``epochs`` epochs of batches through one tf-keras OrderedEnqueuer, as fit(workers=n) runs it.

    One enqueuer for all the epochs, as in ``fit``: starting and stopping it costs about
    0.1 s, which would weigh on one 0.5 s epoch of 251 images but not on a training run.
    """
    from cococxr._tf import keras  # the tf-keras path, only in the processes that measure it

    enqueuer = keras.utils.OrderedEnqueuer(seq, use_multiprocessing=False)
    enqueuer.start(workers=workers, max_queue_size=10)
    try:
        output = enqueuer.get()
        for _ in range(epochs * len(seq)):
            yield next(output)
    finally:
        enqueuer.stop()


def fit_order(seq, epochs: int):
    """The batches of ``epochs`` epochs as ``fit(workers=1)`` asks for them: in order, then ``on_epoch_end``."""
    for _ in range(epochs):
        yield from (seq[i] for i in range(len(seq)))
        seq.on_epoch_end()


def adapter_child(kind: str, coco_file: str, image_root: str, n_images: int, epochs: int) -> None:
    """Subprocess body: ``epochs`` passes of one adapter with 2 workers; print images/s as JSON.

    Each pass (one epoch) is timed whole; the best is reported. The torch loader keeps its
    workers between epochs (``make_loader``'s default ``persistent_workers``), so the
    first pass pays their start; the PyDataset starts its pool every epoch, as ``fit`` does.
    """
    from cococxr.batches import SegmentationBatches  # framework-free: no tf-keras in this process

    batches = SegmentationBatches(coco_file, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False,
                                  image_root=image_root)
    batches = SegmentationBatches(coco_file, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False,
                                  image_root=image_root, image_ids=batches.image_ids[:n_images])
    if kind == "torch":
        from cococxr.torch_data import make_loader

        loader = make_loader(batches, num_workers=2, channels_first=False)

        def one_pass():
            return iterate(loader)
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        from cococxr.keras3 import CocoPyDataset

        dataset = CocoPyDataset(batches, workers=2, use_multiprocessing=kind == "keras3-processes")

        def one_pass():  # what fit() iterates: the PyDataset's own worker pool
            return iterate(PyDatasetAdapter(dataset, shuffle=False).get_numpy_iterator())
    best = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        n = one_pass()
        best = max(best, n / (time.perf_counter() - start))
    print(json.dumps({"images_per_s": best, "images": n}))


def adapter_rate(kind: str, coco_file: Path, image_root: Path, n_images: int, epochs: int) -> float:
    """Images/s of :func:`adapter_child` in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--adapter-child", kind, str(coco_file), str(image_root),
                          str(n_images), str(epochs)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def best_rates(runs: dict, repeats: int) -> tuple[dict, dict]:
    """Highest wall-clock and CPU-time images/s of each ``run() -> n_images``.

    Rounds are interleaved to spread the load of a shared machine evenly over the
    contenders. CPU time (all threads of the process) is the fairer measure of
    single-threaded work on a busy machine; for threaded runs only the wall clock means
    anything.
    """
    wall, cpu = {name: 0.0 for name in runs}, {name: 0.0 for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            n = run()
            wall[name] = max(wall[name], n / (time.perf_counter() - start))
            cpu[name] = max(cpu[name], n / (time.process_time() - start_cpu))
    return wall, cpu


def throughput(data: Path, work: Path, quick: bool) -> dict:
    """Images/s of (a), (b), (c), (d) and their ratios."""
    from cococxr.sequences import CocoSegmentationSequence, ProcessSequence  # tf-keras: not in the adapter children

    with contextlib.redirect_stderr(io.StringIO()):
        coco, _ = convert_mask_folders(data / "images", data / "masks", work / "lungs.json",
                                       class_name="lung", allow_missing_masks=True)
    seq = CocoSegmentationSequence(coco, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False)
    if quick:
        seq = CocoSegmentationSequence(coco, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False,
                                       image_ids=seq.image_ids[:64])
    paths = [coco.image_path(i) for i in seq.image_ids]
    kaggle = KaggleGenerator(work / "lungs.json", coco.image_root, [coco.imgs[i] for i in seq.image_ids],
                             ["lung"])
    gray = CocoSegmentationSequence(coco, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False,
                                    image_ids=seq.image_ids, channels=1)
    cached = CocoSegmentationSequence(coco, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False,
                                      image_ids=seq.image_ids, cache=True)
    iterate(cached[i] for i in range(len(cached)))  # warm the page cache and fill the item cache
    repeats = 1 if quick else 3
    # single-threaded contenders first, then the threaded ones beside (c) again, so that
    # idle TensorFlow threads never sit in a single-threaded measurement
    rates, cpu_rates = best_rates({
        "(c) read + resize only": lambda: read_and_resize(paths),
        "(a) Sequence, 1 worker": lambda: iterate(seq[i] for i in range(len(seq))),
        "(a) 1 worker, channels=1": lambda: iterate(gray[i] for i in range(len(gray))),
        "(a) 1 worker, cache, epoch 2+": lambda: iterate(cached[i] for i in range(len(cached))),
        "(b) Kaggle kernel": lambda: iterate(kaggle[i] for i in range(len(kaggle))),
    }, repeats)
    dataset = seq.as_tf_dataset()
    iterate(dataset)  # trace the tf.data pipeline
    epochs = 1 if quick else 3
    processes = ProcessLoader(seq, workers=2)
    processes.get(0, 0)  # start the workers: they persist across epochs, as in training
    # its own Sequence: the enqueuer contender moves ``seq``'s epoch, which would be a jump here
    process_seq = ProcessSequence(CocoSegmentationSequence(coco, ["lung"], batch_size=BATCH, input_size=SIZE,
                                                           shuffle=False, image_ids=seq.image_ids), workers=2)
    process_seq[0]
    threaded, _ = best_rates({
        "(c) again, beside threaded": lambda: read_and_resize(paths * epochs),
        "(c) in 2 threads (ceiling)": lambda: read_and_resize_threads(paths * epochs, 2),
        "(a) Sequence, 2 workers": lambda: iterate(enqueued(seq, 2, epochs)),
        "(a) in a 2-thread pool": lambda: iterate(pooled(seq, 2, epochs)),
        "(a) as_tf_dataset": lambda: iterate(dataset.repeat(epochs)),
        "(a) ProcessLoader, 2 procs": lambda: iterate(batch for _ in range(epochs) for batch in processes),
        "(a) ProcessSequence, fit": lambda: iterate(fit_order(process_seq, epochs)),
    }, repeats)
    processes.close()
    process_seq.close()
    adapters = {"(d) torch DataLoader, 2 procs": "torch", "(d) Keras 3 PyDataset, 2 thr": "keras3-threads",
                "(d) Keras 3 PyDataset, 2 procs": "keras3-processes"}
    for name, kind in adapters.items():
        threaded[name] = adapter_rate(kind, work / "lungs.json", coco.image_root, len(paths), max(2, epochs))
    ratios = {}
    for clock, r in (("wall", rates), ("cpu", cpu_rates)):
        c, a = r["(c) read + resize only"], r["(a) Sequence, 1 worker"]
        ratios[clock] = {"a/c one worker": a / c, "a/b": a / r["(b) Kaggle kernel"]}
    two_workers = ("(a) Sequence, 2 workers", "(a) as_tf_dataset", "(a) ProcessLoader, 2 procs",
                   "(a) ProcessSequence, fit")
    ratios["wall"]["a/c two workers"] = (max(threaded[name] for name in two_workers)
                                         / threaded["(c) again, beside threaded"])
    for name in ("(a) ProcessLoader, 2 procs", "(a) ProcessSequence, fit"):
        ratios["wall"][f"{name[4:]}/c"] = threaded[name] / threaded["(c) again, beside threaded"]
    for name in adapters:
        ratios["wall"][f"{name[4:]}/c"] = threaded[name] / threaded["(c) again, beside threaded"]
    ceiling = threaded["(c) in 2 threads (ceiling)"] / threaded["(c) again, beside threaded"]
    return {"images": len(paths), "images_per_s": {**rates, **threaded}, "cpu_images_per_s": cpu_rates,
            "ratios": ratios, "two_thread_ceiling": ceiling}


def synthesise(coco_file: Path, data: Path, work: Path, n_images: int, batches: int) -> Path:
    """A COCO file of ``n_images`` records repeating the real ones, in folders r0, r1, ...

    Only the folders holding the first ``batches`` batches get image files (copies): the
    rest are never read.
    """
    data_json = json.loads(coco_file.read_text())
    base = [img for img in data_json["images"]
            if any(a["image_id"] == img["id"] for a in data_json["annotations"])]
    anns_of = {img["id"]: [a for a in data_json["annotations"] if a["image_id"] == img["id"]] for img in base}
    images, anns = [], []
    for k in range(n_images):
        record = base[k % len(base)]
        images.append({**record, "id": k + 1, "file_name": f"r{k // len(base)}/{record['file_name']}"})
        for ann in anns_of[record["id"]]:
            anns.append({**ann, "id": len(anns) + 1, "image_id": k + 1})
    root = work / "big"
    for r in range(-(-batches * BATCH // len(base))):
        shutil.copytree(data / "images", root / f"r{r}")
    path = work / "big.json"
    path.write_text(json.dumps({**data_json, "info": {"image_root": root.name}, "images": images,
                                "annotations": anns}))
    return path


def peak_mb() -> float:
    """Peak RSS of this process in MB.

    VmHWM (Linux) rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` across
    ``execve``, so a child started from this (large) benchmark process would report the
    parent's peak. Elsewhere ``ru_maxrss`` is used.
    """
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def rss_child(coco_file: str, batches: int) -> None:
    """Subprocess body: build a Sequence over the whole file, stream some batches, print JSON."""
    from cococxr.sequences import CocoSegmentationSequence

    baseline = peak_mb()
    start = time.perf_counter()
    seq = CocoSegmentationSequence(coco_file, ["lung"], batch_size=BATCH, input_size=SIZE, shuffle=False)
    built = time.perf_counter() - start
    after_build = peak_mb()
    for i in range(batches):
        seq[i]
    print(json.dumps({"images_in_file": len(seq.image_ids), "batches_streamed": batches,
                      "construct_s": round(built, 1), "baseline_mb": round(baseline),
                      "after_construct_mb": round(after_build), "peak_mb": round(peak_mb())}))


def memory(data: Path, work: Path, quick: bool) -> dict:
    """Peak RSS of streaming a 20,000-image COCO file, measured in a fresh process."""
    batches = 10 if quick else 40
    big = synthesise(work / "lungs.json", data, work, 20_000, batches)
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(big), str(batches)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 images, one repeat, 10 streamed batches")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/cxr-lungs")
    parser.add_argument("--rss-child", nargs=2, metavar=("COCO", "BATCHES"), help=argparse.SUPPRESS)
    parser.add_argument("--adapter-child", nargs=5, metavar=("KIND", "COCO", "ROOT", "IMAGES", "EPOCHS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.adapter_child:
        kind, coco_file, image_root, n_images, epochs = args.adapter_child
        adapter_child(kind, coco_file, image_root, int(n_images), int(epochs))
        return
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        speed = throughput(args.data, Path(tmp), args.quick)
        rss = memory(args.data, Path(tmp), args.quick)
    print(f"cxr-lungs: {speed['images']} images with lung masks, {SIZE[0]}x{SIZE[1]}, batch {BATCH}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"  {'':28s} {'wall images/s':>14s} {'CPU-time images/s':>18s}")
    for name, rate in speed["images_per_s"].items():
        cpu = speed["cpu_images_per_s"].get(name)
        cpu = "-" if cpu is None else f"{cpu:.1f}"
        print(f"  {name:28s} {rate:14.1f} {cpu:>18s}")
    for clock, ratios in speed["ratios"].items():
        for name, ratio in ratios.items():
            if name not in TARGETS:  # the other adapters: against the same (c) and the ceiling
                print(f"  ratio {name:16s} ({clock:4s}) {ratio:5.2f}  ({ratio / speed['two_thread_ceiling']:.2f} "
                      f"of the two-worker ceiling)")
                continue
            verdict = "ok" if ratio >= TARGETS[name] else "MISSED"
            print(f"  ratio {name:16s} ({clock:4s}) {ratio:5.2f}  (target >= {TARGETS[name]})  {verdict}")
    print(f"  (two threads of (c) reach {speed['two_thread_ceiling']:.2f}x (c): the most any two-worker "
          f"loader can reach here)")
    verdict = "ok" if rss["peak_mb"] < RSS_LIMIT_MB else "MISSED"
    print(f"20,000-image COCO file: construct {rss['construct_s']} s; peak RSS {rss['peak_mb']} MB "
          f"(TensorFlow imported: {rss['baseline_mb']} MB, after construction: {rss['after_construct_mb']} MB, "
          f"{rss['batches_streamed']} batches streamed)  (target < {RSS_LIMIT_MB} MB)  {verdict}")


if __name__ == "__main__":
    main()
