"""COCO -> mask PNG folders (``cococxr export masks``).

Two modes, one PNG per image, written atomically:

- ``label-map``: ``OUT/<file_name stem>.png`` with value k for the k-th class (1-based,
  0 = background; later classes win where they overlap), uint8 (uint16 past 255
  classes), plus ``OUT/class_map.json`` (``{"1": "lung"}``), which ``convert masks
  --class-map`` reads back.
- ``per-class``: ``OUT/<class>/<file_name stem>.png``, 0/255 (or 0/1 with ``values=1``).

The PNG keeps the folders of ``file_name`` (``COVID/images/x.png`` -> ``OUT/COVID/images/x.png``).
Classes default to every category whose supercategory is not ``finding`` (image-level
labels have no geometry), in file order. An image without geometry annotations gets an
empty (all-zero) mask, so the output has exactly one mask per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cococxr.atomic import atomic_write_json
from cococxr.coco import CocoDataset, is_label_annotation
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError
from cococxr.io import write_png
from cococxr.masks import annotations_to_channels, annotations_to_label_map
from cococxr.outputs import check_outside_images
from cococxr.paths import check_relative_name

from .common import ConversionReport, comma_list, parallel_map, workers_option

MODES = ("label-map", "per-class")


def export_classes(dataset: CocoDataset, classes: list[str] | None = None) -> list[int]:
    """Category ids to export: ``classes`` by name, or every non-``finding`` category."""
    if classes:
        return dataset.cat_ids(classes)
    ids = [i for i, cat in dataset.cats.items() if cat.get("supercategory") != "finding"]
    if not ids:
        raise ConfigError(f"{dataset.source}: every category is an image-level 'finding'; name --classes")
    return ids


def _mask_name(file_name: str) -> PurePosixPath:
    """``COVID/images/x.jpg`` -> ``COVID/images/x.png`` (checked to stay inside OUT)."""
    check_relative_name(file_name)
    return PurePosixPath(file_name.replace("\\", "/")).with_suffix(".png")


def _write_one(job: tuple, mode: str, category_ids: tuple[int, ...], values: int) -> bool:
    """Rasterise one image's annotations and write its PNG(s); True if anything is non-zero."""
    anns, height, width, targets = job
    if mode == "label-map":
        label_map = annotations_to_label_map(anns, height, width, category_ids)
        write_png(targets[0], label_map)
        return bool(label_map.any())
    channels = annotations_to_channels(anns, height, width, category_ids)
    for k, target in enumerate(targets):
        write_png(target, channels[:, :, k] * np.uint8(values))
    return bool(channels.any())


@dataclass
class ExportMasksOptions:
    """The options of :func:`export_masks` and ``cococxr export masks``.

    ``classes``: category names in label order (list or comma text; default: every
    non-``finding`` category); ``values``: foreground value of per-class masks.
    """

    coco: Any = option(None, "COCO JSON file", positional=True, required=True, role="input")
    out_dir: PathArg = option(None, "output folder", flags=("--out", "-o"), metavar="OUT", required=True,
                           role="output")
    mode: str = option("label-map", "'label-map': one PNG per image, value k = k-th class; 'per-class': "
                                    "OUT/<class>/<stem>.png binary masks (default: label-map)", choices=MODES)
    classes: list[str] | None = option(None, "comma-separated class names, in label order "
                                             "(default: every category whose supercategory is not 'finding')",
                                       parse=comma_list)
    values: int = option(255, "foreground value of per-class masks (default: 255)", choices=(255, 1))
    workers: int = workers_option()


def export_masks(coco: PathArg | CocoDataset, out_dir: PathArg, **options) -> ConversionReport:
    """Write one mask PNG per image (per class in ``per-class`` mode).

    Args:
        coco: COCO file or dataset.
        out_dir: output folder.
        **options: ``mode`` (``"label-map"`` or ``"per-class"``), ``classes``, ``values``
            (255 or 1), ``workers`` (see :class:`ExportMasksOptions`); the files are
            identical for any number of workers.

    Returns:
        The count report.

    Raises:
        ConfigError: bad or unknown options, or unknown class names.
        ConversionError: two images would write the same mask file, or a class name
            cannot be a folder name.
    """
    opts = load_options(ExportMasksOptions, coco=coco, out_dir=out_dir, **options)
    mode, values = opts.mode, opts.values
    dataset = opts.coco if isinstance(opts.coco, CocoDataset) else CocoDataset(opts.coco)
    out_dir = Path(opts.out_dir)
    check_outside_images("--out", out_dir, dataset.image_root, [img.get("file_name") for img in dataset.imgs.values()])
    category_ids = export_classes(dataset, opts.classes)
    names = [dataset.cats[i]["name"] for i in category_ids]
    if mode == "per-class":
        for name in names:
            if not name.strip() or any(c in name for c in "/\\\0") or name in (".", ".."):
                raise ConversionError(f"category {name!r} cannot be a folder name; rename it")
    report = ConversionReport(source=str(dataset.source), output=str(out_dir))
    wanted = set(category_ids)
    jobs, owners = [], {}
    for image_id, image in dataset.imgs.items():
        name = _mask_name(image["file_name"])
        if name in owners:
            raise ConversionError(f"images {owners[name]!r} and {image['file_name']!r} would both write {name}; "
                                  "their file names differ only in the extension")
        owners[name] = image["file_name"]
        anns = dataset.img_to_anns.get(image_id, [])
        geometry = [a for a in anns if not is_label_annotation(a) and a["category_id"] in wanted]
        report.add("images in")
        report.add("annotations in", len(anns))
        report.add("geometry annotations exported", len(geometry))
        targets = ([out_dir / name] if mode == "label-map" else [out_dir / n / name for n in names])
        jobs.append((geometry, int(image["height"]), int(image["width"]), targets))
    report.add("other annotations (labels, other classes)", report.counts["annotations in"]
               - report.counts["geometry annotations exported"])
    non_empty = parallel_map(partial(_write_one, mode=mode, category_ids=tuple(category_ids), values=values),
                             jobs, workers=opts.workers, desc="masks")
    report.add("mask files written", len(jobs) * (1 if mode == "label-map" else len(names)))
    report.add("images with a non-empty mask", sum(non_empty))
    report.add("images with an empty mask", len(non_empty) - sum(non_empty))
    if mode == "label-map":
        atomic_write_json(out_dir / "class_map.json", {str(k): n for k, n in enumerate(names, 1)}, indent=1)
        report.notes.append("label values: " + ", ".join(f"{k}={n}" for k, n in enumerate(names, 1)))
    else:
        report.notes.append(f"one folder per class ({', '.join(names)}), values 0/{values}")
    return report


__all__ = ["ExportMasksOptions", "export_classes", "export_masks"]
