"""``cococxr predict segmentation``: masks for new images, as PNGs and/or COCO JSON.

Inputs are image files, folders (``--recursive`` for subfolders) or one COCO JSON file.
Images are streamed in chunks of ``chunk`` images, ``batch_size`` at a time, with a
progress bar: a folder of any size is never loaded into memory. Masks are predicted at
the model's input size, resized back to each image's size (linear interpolation of the
probabilities) and thresholded.

Outputs, under ``--out`` mirroring the inputs' relative paths:

* ``--format binary`` (default): ``<stem>.png`` with 0/255 for one class, or
  ``<stem>_<class>.png`` per class for several;
* ``--format label``: one ``<stem>.png`` label map, 0 background and ``k+1`` for the
  k-th class (later classes win where they overlap);
* ``--coco-out FILE``: for a COCO input, a COCO *results* list (``image_id``,
  ``category_id``, RLE ``segmentation``, ``score``) referring to that file's ids; for
  files and folders, a complete COCO dataset whose annotations are the predictions
  (with ``score``), its ``info.image_root`` the inputs' common folder. One result per
  class mask, or with ``--instances`` one per 8-connected component of it (for ground
  truth with one annotation per object, such as each lung its own).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.io import write_png
from cococxr.metrics import masks_to_coco_results
from cococxr.pipelines.engine.cards import input_spec
from cococxr.pipelines.engine.images import collect_images, files_coco, is_coco_input
from cococxr.pipelines.engine.robustness import postprocess_probabilities
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.segmenter import load_segmentation_model, predict_probabilities
from cococxr.pipelines.segmentation.arguments import MASK_FORMATS, split_names
from cococxr.rle import rle_area, rle_bbox


def _chunks(inputs: list, classes: list[str], chunk: int, recursive: bool, image_root) -> Iterator:
    """Yield ``(CocoDataset, image ids)`` chunks of a COCO input or of files and folders."""
    if is_coco_input(inputs):
        coco = CocoDataset(inputs[0], image_root)
        ids = list(coco.imgs)
        for start in range(0, len(ids), chunk):
            yield coco, ids[start:start + chunk]
        return
    root, files = collect_images(inputs, recursive)
    for start in range(0, len(files), chunk):
        categories = [{"id": k + 1, "name": name, "supercategory": "anatomy"} for k, name in enumerate(classes)]
        coco = files_coco(files[start:start + chunk], root, categories, first_id=start + 1)
        yield coco, list(coco.imgs)


def _write_masks(out: Path, file_name: str, prob: np.ndarray, classes: list[str], mask_format: str,
                 threshold: float) -> int:
    stem = Path(file_name).with_suffix("")
    masks = prob > threshold
    if mask_format == "label":
        label = np.zeros(masks.shape[:2], np.uint8)
        for k in range(masks.shape[2]):
            label[masks[..., k]] = k + 1
        write_png(out / f"{stem}.png", label)
        return 1
    for k, name in enumerate(classes):
        suffix = "" if len(classes) == 1 else f"_{name}"
        write_png(out / f"{stem}{suffix}.png", masks[..., k].astype(np.uint8) * 255)
    return len(classes)


def _results_dataset(images: list[dict], classes: list[str], results: list[dict], root: Path) -> dict:
    annotations = [{"id": n + 1, **r, "area": int(rle_area(r["segmentation"])),
                    "bbox": [float(v) for v in rle_bbox(r["segmentation"])], "iscrowd": 0}
                   for n, r in enumerate(results)]
    return {"info": {"description": "cococxr predict segmentation", "image_root": str(root)},
            "images": images, "annotations": annotations,
            "categories": [{"id": k + 1, "name": name, "supercategory": "anatomy"}
                           for k, name in enumerate(classes)]}


def predict_segmentation(model_or_path, inputs: list, out=None, *, coco_out=None,
                         mask_format: str = "binary", threshold: float = 0.5, batch_size: int = 8,
                         chunk: int = 256, recursive: bool = False, image_root=None, classes=None,
                         input_size=None, channels=None, preprocessing=None, equalize=None,
                         progress: bool = True, flip_tta: bool = False, postprocess: bool = False,
                         instances: bool = False) -> dict:
    """Predict masks for images and write them.

    Args:
        model_or_path: a tf-keras model or a ``.h5``/``.keras`` file (its run's
            ``config.json`` supplies classes and preprocessing).
        inputs: image files and folders, or a single COCO JSON path.
        out: folder for mask PNGs (None: no PNGs).
        coco_out: COCO JSON to write (see the module docstring), or None.
        mask_format: ``"binary"``, ``"label"`` or ``"none"``.
        threshold: probability threshold.
        batch_size: images predicted at a time.
        chunk: images listed/indexed at a time.
        recursive: search folders recursively.
        image_root: image folder of a COCO input.
        classes, input_size, channels, preprocessing, equalize: override the run config.
        progress: show progress bars.
        flip_tta: average each prediction with that of the mirrored image.
        postprocess: keep the two largest components of each mask and fill its holes.
        instances: in ``coco_out``, one result per 8-connected component of each class
            mask (scored by its mean probability) instead of one per class mask, for
            scoring against ground truth with one annotation per object.

    Returns:
        ``{"images": n, "mask_files": n, "coco_out": path or None, "classes": [...]}``.
    """
    if mask_format not in MASK_FORMATS:
        raise ConfigError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
    if out is None and coco_out is None:
        raise ConfigError("nothing to write: give an output folder for masks and/or coco_out")
    model, path = load_segmentation_model(model_or_path)
    spec = input_spec(model, path, classes=classes, input_size=input_size, channels=channels,
                      preprocessing=preprocessing, equalize=equalize)
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    n_images = n_files = 0
    images, results, root = [], [], None
    for coco, ids in _chunks(inputs, spec.classes, chunk, recursive, image_root):
        root = coco.image_root
        cat_ids = [coco.cat_id(name) for name in spec.classes]
        for image_id, prob in predict_probabilities(model, coco, spec, ids, batch_size, progress=progress,
                                                    flip_tta=flip_tta):
            if postprocess:
                prob = postprocess_probabilities(prob, threshold)
            record = coco.imgs[image_id]
            n_images += 1
            if out is not None and mask_format != "none":
                n_files += _write_masks(Path(out), record["file_name"], prob, spec.classes, mask_format,
                                        threshold)
            if coco_out is not None:
                results += masks_to_coco_results([image_id], [prob], cat_ids, threshold=threshold,
                                                 instances=instances)
                images.append({k: record[k] for k in ("id", "file_name", "height", "width")})
    if coco_out is not None:
        write_json(coco_out, results if is_coco_input(inputs)
                   else _results_dataset(images, spec.classes, results, root))
    return {"images": n_images, "mask_files": n_files, "coco_out": str(coco_out) if coco_out else None,
            "classes": spec.classes}


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr predict segmentation`` (after :mod:`cococxr.pipelines.segmentation.commands` parsed it)."""
    summary = predict_segmentation(
        args.model, args.images, args.out, coco_out=args.coco_out, mask_format=args.mask_format,
        threshold=args.threshold, batch_size=args.batch_size, recursive=args.recursive,
        image_root=args.image_root, classes=split_names(args.classes), input_size=args.input_size,
        channels=args.channels, preprocessing=args.preprocessing, equalize=args.equalize,
        flip_tta=args.flip_tta, postprocess=args.postprocess, instances=args.instances)
    print(f"{summary['images']} image(s): {summary['mask_files']} mask file(s) in {args.out}"
          + (f", COCO JSON {summary['coco_out']}" if summary["coco_out"] else ""))
    return 0


__all__ = ["predict_segmentation", "run"]
