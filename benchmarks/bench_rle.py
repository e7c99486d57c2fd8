"""Kaggle RLE speed: cococxr.rle beside pycocotools' C code and naive Python loops.

Prints ms per mask for decode and encode on realistic masks (ellipse blobs at 266x266
and 1024x1024; real Data Science Bowl 2018 nucleus masks when ../shared/data is there)
and the ratios the project targets: Kaggle decode within 2x of pycocotools.mask.decode,
and at least 20x faster than the naive per-run loop.

    python benchmarks/bench_rle.py [--quick]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cococxr.rle import kaggle_rle_decode, kaggle_rle_encode

DSB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018-rle"


# ------------------------------------------------------------------ naive baselines
def naive_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Per-run Python loop that fills each run pixel by pixel (column-major)."""
    height, width = shape
    flat = np.zeros(height * width, np.uint8)
    tokens = text.split()
    for i in range(0, len(tokens), 2):
        start = int(tokens[i]) - 1
        for pixel in range(start, start + int(tokens[i + 1])):
            flat[pixel] = 1
    return flat.reshape(width, height).T


def kernel_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """The popular Kaggle-kernel decoder: Python loop over runs, one slice per run."""
    height, width = shape
    tokens = text.split()
    starts = np.asarray(tokens[0::2], dtype=int) - 1
    ends = starts + np.asarray(tokens[1::2], dtype=int)
    flat = np.zeros(height * width, np.uint8)
    for start, end in zip(starts, ends):
        flat[start:end] = 1
    return flat.reshape(width, height).T


def naive_encode(mask: np.ndarray) -> str:
    """Python loop over the pixels (column-major) emitting 'start length' pairs."""
    pairs, start = [], None
    for index, value in enumerate(mask.ravel(order="F").tolist() + [0]):
        if value and start is None:
            start = index
        elif not value and start is not None:
            pairs += [start + 1, index - start]
            start = None
    return " ".join(map(str, pairs))


# ----------------------------------------------------------------------- mask sets
def blob_masks(size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Masks with 3-12 filled ellipses of random size and angle, some overlapping."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(3, 13))):
            center = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            axes = (int(rng.integers(size // 40 + 2, size // 6)),
                    int(rng.integers(size // 40 + 2, size // 6)))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks.append(mask)
    return masks


def dsb_masks(count: int) -> list[np.ndarray]:
    """Up to ``count`` real nucleus masks, taken evenly across the DSB 2018 images."""
    folders = sorted((DSB / "stage1_train").glob("*/masks"))
    paths = [sorted(folder.glob("*.png"))[:max(1, count // max(1, len(folders)))]
             for folder in folders]
    flat = [p for group in paths for p in group][:count]
    return [(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) > 0).astype(np.uint8) for p in flat]


# -------------------------------------------------------------------------- timing
def ms_per_mask(function, items: list, repeats: int) -> float:
    """Mean over ``items`` of the fastest of ``repeats`` calls ``function(*item)``, in ms.

    Taking each call's minimum keeps the figure stable on a busy machine.
    """
    best = []
    for item in items:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(*item)
            times.append(time.perf_counter() - start)
        best.append(min(times))
    return float(np.mean(best)) * 1e3


def bench(name: str, masks: list[np.ndarray], repeats: int, naive_count: int) -> dict:
    """Time every implementation on one mask set, after checking that they agree.

    The per-pixel naive encoder is slow, so it runs on the first ``naive_count`` masks,
    and its ratio is taken against ours on those same masks.
    """
    texts = [(kaggle_rle_encode(m), m.shape) for m in masks]
    arrays = [(m,) for m in masks]
    for (text, shape), mask in zip(texts[:naive_count], masks):
        assert naive_encode(mask) == text
        assert (naive_decode(text, shape) == mask).all() and (kernel_decode(text, shape) == mask).all()
    return {
        "set": name, "masks": len(masks),
        "runs": float(np.mean([len(t.split()) / 2 for t, _ in texts])),
        "decode": ms_per_mask(kaggle_rle_decode, texts, repeats),
        "coco_decode": ms_per_mask(mask_utils.decode,
                                   [(mask_utils.encode(np.asfortranarray(m)),) for m in masks],
                                   repeats),
        "kernel_decode": ms_per_mask(kernel_decode, texts, repeats),
        "naive_decode": ms_per_mask(naive_decode, texts, 2),
        "encode": ms_per_mask(kaggle_rle_encode, arrays, repeats),
        "coco_encode": ms_per_mask(mask_utils.encode, [(np.asfortranarray(m),) for m in masks],
                                   repeats),
        "encode_subset": ms_per_mask(kaggle_rle_encode, arrays[:naive_count], repeats),
        "naive_encode": ms_per_mask(naive_encode, arrays[:naive_count], 1),
    }


def report(rows: list[dict]) -> None:
    """Print the figures and the ratios against the targets."""
    print(f"{'set':<28}{'runs':>7} | {'decode ms/mask: ours':>21}{'pycoco':>9}{'kernel':>9}"
          f"{'naive':>9} | {'encode: ours':>13}{'pycoco':>9}{'naive':>9}")
    for r in rows:
        print(f"{r['set']:<28}{r['runs']:>7.0f} | {r['decode']:>21.4f}{r['coco_decode']:>9.4f}"
              f"{r['kernel_decode']:>9.4f}{r['naive_decode']:>9.3f} | {r['encode']:>13.4f}"
              f"{r['coco_encode']:>9.4f}{r['naive_encode']:>9.2f}")
    print("\nratios (decode target: ours/pycoco <= 2, naive/ours >= 20)")
    for r in rows:
        vs_coco = r["decode"] / r["coco_decode"]
        vs_naive = r["naive_decode"] / r["decode"]
        print(f"{r['set']:<28} decode ours/pycoco {vs_coco:5.2f} "
              f"[{'ok' if vs_coco <= 2 else 'MISSED'}]  naive/ours {vs_naive:7.1f} "
              f"[{'ok' if vs_naive >= 20 else 'MISSED'}]  kernel/ours "
              f"{r['kernel_decode'] / r['decode']:5.1f} | encode ours/pycoco "
              f"{r['encode'] / r['coco_encode']:5.2f}  naive/ours {r['naive_encode'] / r['encode_subset']:7.1f}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (``--quick``: fewer masks, shorter timing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of ~20")
    args = parser.parse_args(argv)
    count, repeats, naive = (8, 5, 2) if args.quick else (30, 25, 5)
    sets = [("blobs 266x266", blob_masks(266, count)),
            ("blobs 1024x1024", blob_masks(1024, count, seed=1))]
    if DSB.is_dir():
        sets.append(("dsb2018 nuclei (real)", dsb_masks(count * 5)))
    else:
        print(f"(real DSB 2018 masks not found at {DSB}; synthetic masks only)")
    report([bench(name, masks, repeats, naive) for name, masks in sets])


if __name__ == "__main__":
    main()
