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
  (with ``score``), its ``info.image_root`` the inputs' common folder.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from cococxr.errors import ConfigError

MASK_FORMATS = ("binary", "label", "none")


def collect_images(inputs: list, recursive: bool = False) -> tuple[Path, list[Path]]:
    """Expand files and folders into image files; returns ``(common root, files)``.

    Raises:
        ConfigError: an input does not exist or nothing is found.
    """
    from cococxr.converters.common import list_images

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list_images(item, recursive=recursive)
        elif item.is_file():
            files.append(item)
        else:
            raise ConfigError(f"{item}: no such file or folder")
    if not files:
        raise ConfigError(f"no images found in {', '.join(map(str, inputs))}")
    files = list(dict.fromkeys(p.resolve() for p in files))
    root = Path(os.path.commonpath([p.parent for p in files]))
    return root, files


def _chunk_coco(root: Path, files: list[Path], classes: list[str], first_id: int):
    """A CocoDataset of ``files`` (ids from ``first_id``), categories = ``classes``."""
    from cococxr.coco import CocoDataset
    from cococxr.io import image_size

    images = []
    for n, path in enumerate(files):
        height, width = image_size(path)
        images.append({"id": first_id + n, "file_name": path.relative_to(root).as_posix(),
                       "height": int(height), "width": int(width)})
    categories = [{"id": k + 1, "name": name, "supercategory": "anatomy"} for k, name in enumerate(classes)]
    return CocoDataset({"images": images, "annotations": [], "categories": categories}, root, validate=False)


def is_coco_input(inputs: list) -> bool:
    """True when the inputs are one COCO JSON file."""
    return len(inputs) == 1 and str(inputs[0]).lower().endswith(".json")


def _chunks(inputs: list, classes: list[str], chunk: int, recursive: bool, image_root) -> Iterator:
    """Yield ``(CocoDataset, image ids)`` chunks of a COCO input or of files and folders."""
    from cococxr.coco import CocoDataset

    if is_coco_input(inputs):
        coco = CocoDataset(inputs[0], image_root)
        ids = list(coco.imgs)
        for start in range(0, len(ids), chunk):
            yield coco, ids[start:start + chunk]
        return
    root, files = collect_images(inputs, recursive)
    for start in range(0, len(files), chunk):
        coco = _chunk_coco(root, files[start:start + chunk], classes, start + 1)
        yield coco, list(coco.imgs)


def _write_masks(out: Path, file_name: str, prob: np.ndarray, classes: list[str], mask_format: str,
                 threshold: float) -> int:
    from cococxr.io import write_png

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
    from cococxr.rle import rle_area, rle_bbox

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
                         progress: bool = True) -> dict:
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

    Returns:
        ``{"images": n, "mask_files": n, "coco_out": path or None, "classes": [...]}``.
    """
    from cococxr.pipelines.engine.runs import write_json
    from cococxr.pipelines.segmentation.model import input_spec, load_segmentation_model, predict_probabilities
    from cococxr.metrics import masks_to_coco_results

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
        for image_id, prob in predict_probabilities(model, coco, spec, ids, batch_size, progress=progress):
            record = coco.imgs[image_id]
            n_images += 1
            if out is not None and mask_format != "none":
                n_files += _write_masks(Path(out), record["file_name"], prob, spec.classes, mask_format,
                                        threshold)
            if coco_out is not None:
                results += masks_to_coco_results([image_id], [prob], cat_ids, threshold=threshold)
                images.append({k: record[k] for k in ("id", "file_name", "height", "width")})
    if coco_out is not None:
        write_json(coco_out, results if is_coco_input(inputs)
                   else _results_dataset(images, spec.classes, results, root))
    return {"images": n_images, "mask_files": n_files, "coco_out": str(coco_out) if coco_out else None,
            "classes": spec.classes}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr predict segmentation``."""
    from cococxr.pipelines.segmentation.evaluate import add_input_arguments

    parser.add_argument("model", help="model file (.h5 or .keras), e.g. runs/<run>/model.h5")
    parser.add_argument("images", nargs="+", help="image files, folders, or one COCO JSON file")
    parser.add_argument("--out", help="folder for mask PNGs (mirrors the inputs' relative paths)")
    parser.add_argument("--coco-out", help="write the predictions as COCO JSON (results list for a "
                                           "COCO input, a full dataset for files/folders)")
    parser.add_argument("--format", dest="mask_format", choices=MASK_FORMATS, default="binary",
                        help="binary: 0/255 PNG per class; label: one label map (k+1 per class); "
                             "none: no PNGs (default: binary)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument("--recursive", action="store_true", help="search folders recursively")
    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr predict segmentation``."""
    from cococxr.pipelines.segmentation.evaluate import split_names

    summary = predict_segmentation(
        args.model, args.images, args.out, coco_out=args.coco_out, mask_format=args.mask_format,
        threshold=args.threshold, batch_size=args.batch_size, recursive=args.recursive,
        image_root=args.image_root, classes=split_names(args.classes), input_size=args.input_size,
        channels=args.channels, preprocessing=args.preprocessing, equalize=args.equalize)
    print(f"{summary['images']} image(s): {summary['mask_files']} mask file(s) in {args.out}"
          + (f", COCO JSON {summary['coco_out']}" if summary["coco_out"] else ""))
    return 0


__all__ = ["MASK_FORMATS", "collect_images", "is_coco_input", "predict_segmentation"]
