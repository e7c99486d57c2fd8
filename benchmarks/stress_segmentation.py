"""Stress test of segmentation models: Dice on the validation images under shifts of acquisition.

Every image of ``--val`` (and its ground-truth masks, where the change moves them) is
rewritten in each variant, at its original resolution, and each model is scored on it
by ``evaluate_segmentation`` (mean Dice over images, at the variant's resolution):

* ``original``: unchanged;
* ``letterbox``: centred in a black square of side 1.16 x the longer side (the mask too);
* ``text``: burned-in text and markers (``BurnedInText``, seeded per image; mask unchanged);
* ``dark``: gamma 1.8;
* ``bright``: gamma 0.5, then contrast halved around the image mean;
* ``lowres``: downscaled by 4 (area) and upscaled back (linear).

The first model is the baseline: ``--baseline MODEL`` (a trained model file) or
``--train-baseline TRAIN_JSON``, which trains today's default recipe
(``configs/segmentation.yaml``, ``--epochs 100 --max-train-seconds 1200``) into
``OUT/baseline`` in the same run. Each other model's Dice is printed with its difference
to the baseline's, and everything is written to ``OUT/stress.json``.

Usage:
    python benchmarks/stress_segmentation.py --val val.json --baseline runs/default/model.h5 \\
        letterbox_exposure=runs/lle/model.h5 --out stress/
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from cococxr.augment import Augmenter, BurnedInText
from cococxr.coco import CocoDataset
from cococxr.io import read_image, write_png
from cococxr.masks import annotations_to_channels
from cococxr.rle import coco_rle_encode, rle_area, rle_bbox

LETTERBOX_ASPECT = 1.16
_TEXT = Augmenter(BurnedInText(p=1.0))


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    return (255 * (image / 255.0) ** gamma).astype(np.float64)


def letterbox(image, mask, image_id):
    """Centre in a black square of side ``LETTERBOX_ASPECT`` x the longer side."""
    height, width = image.shape[:2]
    side = round(LETTERBOX_ASPECT * max(height, width))
    top, left = (side - height) // 2, (side - width) // 2
    out_image = np.zeros((side, side), image.dtype)
    out_mask = np.zeros((side, side, mask.shape[2]), mask.dtype)
    out_image[top:top + height, left:left + width] = image
    out_mask[top:top + height, left:left + width] = mask
    return out_image, out_mask


def text(image, mask, image_id):
    return _TEXT(image, seed=int(image_id))[0], mask


def dark(image, mask, image_id):
    return np.round(_gamma(image, 1.8)).astype(np.uint8), mask


def bright(image, mask, image_id):
    out = _gamma(image, 0.5)
    out = out.mean() + 0.5 * (out - out.mean())
    return np.clip(np.round(out), 0, 255).astype(np.uint8), mask


def lowres(image, mask, image_id):
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), mask


VARIANTS = {"original": lambda image, mask, image_id: (image, mask), "letterbox": letterbox, "text": text,
            "dark": dark, "bright": bright, "lowres": lowres}


def variant_dataset(coco: CocoDataset, name: str, folder: Path) -> CocoDataset:
    """The images and ground truth of ``coco`` rewritten by variant ``name`` under ``folder``."""
    transform = VARIANTS[name]
    cat_ids = sorted(coco.cats)
    images, annotations = [], []
    for image_id, record in coco.imgs.items():
        image = read_image(coco.image_path(image_id))
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        anns = coco.anns_for(image_id, cat_ids, geometry=True)
        mask = annotations_to_channels(anns, int(record["height"]), int(record["width"]), cat_ids)
        image, mask = transform(image, mask, image_id)
        file_name = f"{image_id}.png"
        write_png(folder / file_name, image)
        images.append({**record, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        for k, cat_id in enumerate(cat_ids):
            if mask[..., k].any():
                rle = coco_rle_encode(mask[..., k])
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat_id,
                                    "segmentation": rle, "area": int(rle_area(rle)),
                                    "bbox": [float(v) for v in rle_bbox(rle)], "iscrowd": 0})
    data = {"images": images, "annotations": annotations, "categories": list(coco.cats.values())}
    return CocoDataset(data, folder)


def _train_baseline(train_json: str, val_json: str, out: Path) -> str:
    from cococxr.pipelines.segmentation.train import train_segmentation  # deferred: imports TensorFlow

    result = train_segmentation(None, train=train_json, val=val_json, epochs=100, max_train_seconds=1200,
                                out=str(out / "baseline"), progress=2, tensorboard=False)
    return result["model"]


def stress(models: dict[str, str], val_json: str) -> dict[str, dict[str, float]]:
    """``{model name: {variant: mean Dice}}`` (the first model is the baseline)."""
    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation  # deferred: imports TensorFlow

    coco = CocoDataset(val_json)
    scores: dict[str, dict[str, float]] = {name: {} for name in models}
    with tempfile.TemporaryDirectory(prefix="stress-") as tmp:
        for variant in VARIANTS:
            folder = Path(tmp) / variant
            data = variant_dataset(coco, variant, folder)
            for name, path in models.items():
                metrics = evaluate_segmentation(path, data, progress=False, overlays=0)
                scores[name][variant] = float(metrics["dice"])
                print(f"{variant:9s} {name:24s} Dice {scores[name][variant]:.4f}", flush=True)
    return scores


def table(scores: dict[str, dict[str, float]]) -> str:
    """Markdown table: Dice per variant, and for each model after the first its difference to it."""
    names = list(scores)
    base = scores[names[0]]
    lines = ["| model | " + " | ".join(VARIANTS) + " |", "|---|" + "---:|" * len(VARIANTS)]
    for name in names:
        cells = [f"{scores[name][v]:.4f}" + ("" if name == names[0] else f" ({scores[name][v] - base[v]:+.4f})")
                 for v in VARIANTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="NAME=MODEL", help="models compared with the baseline")
    parser.add_argument("--val", required=True, help="validation COCO JSON with ground-truth masks")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--baseline", help="baseline model file (today's default recipe)")
    group.add_argument("--train-baseline", metavar="TRAIN_JSON",
                       help="train today's default recipe on this COCO file first, as the baseline")
    parser.add_argument("--out", required=True, help="folder for stress.json (and the trained baseline)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [m.split("=", 1) for m in args.models]
    if any(len(p) != 2 or not p[0] for p in pairs):
        parser.error("models are given as NAME=MODEL_FILE")
    baseline = args.baseline or _train_baseline(args.train_baseline, args.val, out)
    models = {"baseline": baseline, **dict(pairs)}
    scores = stress(models, args.val)
    print(table(scores))
    (out / "stress.json").write_text(json.dumps({"models": models, "dice": scores}, indent=2) + "\n")
    print(f"-> {out / 'stress.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
