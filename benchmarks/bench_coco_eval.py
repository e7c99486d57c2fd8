"""COCO mask AP: faster-coco-eval against pycocotools on the same files, same run.

Ground truth: V7 Labs' hand-drawn lung masks of cxr-lungs (one annotation per lung);
results: lungVAE's predicted lungs for the same films (one result per component, scored
by size). Both are repeated over more images to reach about 2k, 8k and 33k ground-truth
annotations (the UW-Madison training set has 33,913). For each size it times
``cococxr.metrics.coco_evaluate`` (index, evaluate, accumulate, summarise) with each
evaluator, prints the speed-up and the largest difference of the 12 COCO statistics.

Usage: python benchmarks/bench_coco_eval.py [--quick] [--data ../shared/data/cxr-lungs]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cococxr.coco import CocoBuilder
from cococxr.io import read_mask
from cococxr.masks import mask_to_annotations
from cococxr.metrics import COCO_STAT_NAMES, coco_evaluate

SIZES = (2_000, 8_000, 33_000)


def real_pairs(data: Path) -> list[tuple[tuple[int, int], list[dict], list[dict]]]:
    """Per film: its size, the drawn lungs' and the predicted lungs' segmentations (RLE)."""
    pairs = []
    for path in sorted((data / "masks_lungvae").glob("*.png")):
        drawn = data / "masks" / path.name
        if not drawn.is_file():
            continue
        truth, pred = (np.asarray(read_mask(p)) for p in (drawn, path))
        truth, pred = (m[..., 0] if m.ndim == 3 else m for m in (truth, pred))
        if truth.shape != pred.shape or not truth.any():
            continue
        anns = [mask_to_annotations((m > 0).astype(np.uint8), 1, 1, instances=True) for m in (truth, pred)]
        pairs.append((truth.shape, anns[0], anns[1]))
    return pairs


def synthesise(pairs, n_annotations: int):
    """A ground truth of about ``n_annotations`` lungs and its results, films repeated."""
    builder = CocoBuilder()
    lung = builder.add_category("lung", "anatomy")
    results, n = [], 0
    while n < n_annotations:
        for (height, width), truth, pred in pairs:
            image_id = builder.add_image(f"{len(builder.images)}.png", height, width)
            for ann in truth:
                builder.add_annotation(image_id, lung, ann["segmentation"])
            results += [{"image_id": image_id, "category_id": lung, "segmentation": ann["segmentation"],
                         "score": 1.0 - 1.0 / (1.0 + ann["area"] + 1e-3 * image_id)} for ann in pred]
            n += len(truth)
            if n >= n_annotations:
                break
    return builder.build("."), results, n


def timed(gt, results, evaluator: str) -> tuple[float, dict]:
    start = time.perf_counter()
    stats = coco_evaluate(gt, results, "segm", evaluator=evaluator)
    return time.perf_counter() - start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 2k size only")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-lungs")
    args = parser.parse_args()
    if not (args.data / "masks_lungvae").is_dir():
        raise SystemExit(f"{args.data}/masks_lungvae not found: pass --data ../shared/data/cxr-lungs")
    pairs = real_pairs(args.data)
    print(f"{len(pairs)} films with drawn and predicted lungs")
    print(f"{'annotations':>11} {'results':>8} {'pycocotools s':>13} {'faster s':>9} {'speed-up':>8} "
          f"{'max |dAP|':>10} {'AP':>7}")
    for size in SIZES[:1] if args.quick else SIZES:
        gt, results, n = synthesise(pairs, size)
        slow_s, slow = timed(gt, results, "pycocotools")
        fast_s, fast = timed(gt, results, "faster-coco-eval")
        diff = max(abs((slow[k] or 0) - (fast[k] or 0)) for k in COCO_STAT_NAMES)
        print(f"{n:>11,} {len(results):>8,} {slow_s:>13.2f} {fast_s:>9.2f} {slow_s / fast_s:>7.2f}x "
              f"{diff:>10.1e} {slow['AP']:>7.4f}")


if __name__ == "__main__":
    main()
