"""Class-per-folder trees -> COCO image-level labels (``cococxr convert folders``).

Two layouts: ``ROOT/<Class>/*`` and ``ROOT/<Split>/<Class>/*`` (e.g. ``Train/COVID/x.png``).
Every image gets one label annotation whose category is its class folder (supercategory
``finding``). Categories are the sorted union of class names over all splits, so ids are
the same in every file written. ``file_name`` is relative to ROOT. With splits, either
one file holds everything and each image record has ``split`` (folder name, lower case),
or :func:`convert_class_folders_by_split` writes one file per split.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.errors import ConfigError, ConversionError
from cococxr.io import image_size, read_image

from .common import ConversionReport, add_common_arguments, image_root_hint, list_images, parallel_map

LAYOUTS = ("auto", "splits", "classes")


@dataclass(frozen=True)
class LabelledImage:
    """One image of the tree: path, name relative to ROOT, class, split (or None)."""

    path: Path
    file_name: str
    label: str
    split: str | None


def _subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect_layout(root: Path) -> str:
    """``"splits"`` when no top folder holds images itself and each has sub-folders, else ``"classes"``."""
    tops = _subfolders(root)
    if not tops:
        raise ConfigError(f"{root}: no class folders; expected ROOT/<Class>/* or ROOT/<Split>/<Class>/*")
    nested = all(_subfolders(top) and not list_images(top) for top in tops)
    return "splits" if nested else "classes"


def scan_tree(root: str | os.PathLike, layout: str = "auto") -> list[LabelledImage]:
    """List every image of the tree with its class and split, sorted by relative path.

    Raises:
        ConfigError: ROOT missing, unknown layout, or split names equal up to case.
        ConversionError: a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    layout = detect_layout(root) if layout == "auto" else layout
    groups = ([(top.name.lower(), _subfolders(top)) for top in _subfolders(root)] if layout == "splits"
              else [(None, _subfolders(root))])
    splits = [split for split, _ in groups]
    if len(set(splits)) != len(splits):
        raise ConfigError(f"{root}: split folders whose names differ only in case: {splits}")
    images, empty = [], []
    for split, classes in groups:
        for folder in classes:
            found = list_images(folder, recursive=True)
            empty += [] if found else [str(folder)]
            images += [LabelledImage(p, p.relative_to(root).as_posix(), folder.name, split) for p in found]
    if empty:
        raise ConversionError(f"class folder(s) without images: {', '.join(empty)}")
    return sorted(images, key=lambda i: i.file_name)


def _shape(path: Path, verify: bool) -> tuple[int, int]:
    """Image (height, width): header only, or a full decode when ``verify``."""
    return tuple(read_image(path).shape[:2]) if verify else image_size(path)


def _build(images: list[LabelledImage], shapes: dict[Path, tuple[int, int]], classes: list[str],
           info: dict, root: Path, split_key: bool, report: ConversionReport) -> CocoDataset:
    """One dataset of ``images``, all ``classes`` as categories in the same order."""
    builder = CocoBuilder(info=info)
    ids = {name: builder.add_category(name, supercategory="finding") for name in classes}
    for image in images:
        extra = {"split": image.split} if split_key and image.split else {}
        image_id = builder.add_image(image.file_name, *shapes[image.path], **extra)
        builder.add_label(image_id, ids[image.label])
        report.add(f"labels out: {image.label}" + (f" ({image.split})" if image.split else ""))
    return builder.build(root)


def _scan_and_measure(root, layout, verify_images, workers, report):
    """Scan the tree and read every image's size (in parallel)."""
    images = scan_tree(root, layout)
    report.add("images in", len(images))
    sizes = parallel_map(partial(_shape, verify=verify_images), [i.path for i in images], workers, desc="images")
    return images, dict(zip((i.path for i in images), sizes, strict=True)), sorted({i.label for i in images})


def convert_class_folders(root: str | os.PathLike, out: str | os.PathLike | None = None, *, layout: str = "auto",
                          verify_images: bool = False, workers: int = 1, indent: int | None = None):
    """Convert a class-per-folder tree into one COCO dataset of image-level labels.

    Args:
        root: ``ROOT/<Class>/*`` or ``ROOT/<Split>/<Class>/*``.
        out: COCO JSON to write atomically (nothing is written when None).
        layout: ``"auto"``, ``"splits"`` or ``"classes"``.
        verify_images: decode every image fully (default reads only its header).
        workers: worker processes; the output is identical for any value.
        indent: JSON indent.

    Returns:
        ``(CocoDataset, ConversionReport)``; with splits, each image has ``split``.
    """
    root = Path(root)
    report = ConversionReport(source=str(root))
    images, shapes, classes = _scan_and_measure(root, layout, verify_images, workers, report)
    info = {"description": f"class folders {root.name}",
            "image_root": image_root_hint(root, out) if out is not None else str(root.resolve())}
    dataset = _build(images, shapes, classes, info, root, True, report)
    report.add("images out", len(dataset.imgs))
    if out is not None:
        dataset.write(out, indent=indent)
        report.output = str(out)
    return dataset, report


def convert_class_folders_by_split(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                                   verify_images: bool = False, workers: int = 1, indent: int | None = None):
    """Convert ``ROOT/<Split>/<Class>/*`` into one COCO dataset per split.

    Every dataset has every class as a category, with the same ids. When ``out_dir`` is
    given, ``<out_dir>/<split>.json`` files are written (atomically, each after all are built).

    Returns:
        ``({split: CocoDataset}, ConversionReport)``.

    Raises:
        ConfigError: the tree has no split level.
    """
    root = Path(root)
    if detect_layout(root) != "splits":
        raise ConfigError(f"{root}: no <Split>/<Class> folders; write a single file with --out instead")
    report = ConversionReport(source=str(root))
    images, shapes, classes = _scan_and_measure(root, "splits", verify_images, workers, report)
    datasets = {}
    for split in sorted({i.split for i in images}):
        target = Path(out_dir) / f"{split}.json" if out_dir is not None else None
        info = {"description": f"class folders {root.name}, split {split}",
                "image_root": image_root_hint(root, target) if target else str(root.resolve())}
        datasets[split] = _build([i for i in images if i.split == split], shapes, classes, info, root, False, report)
    report.add("images out", sum(len(d.imgs) for d in datasets.values()))
    if out_dir is not None:
        for split, dataset in datasets.items():
            dataset.write(Path(out_dir) / f"{split}.json", indent=indent)
        report.output = ", ".join(str(Path(out_dir) / f"{s}.json") for s in datasets)
    return datasets, report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr convert folders``."""
    parser.add_argument("root", help="ROOT/<Class>/* or ROOT/<Split>/<Class>/* (e.g. Train/COVID/x.png)")
    parser.add_argument("--out-dir", help="write one COCO file per split: OUT_DIR/<split>.json")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="'splits' (ROOT/<Split>/<Class>), 'classes' (ROOT/<Class>) or 'auto' "
                             "(splits when no top folder holds images itself; default)")
    parser.add_argument("--verify-images", action="store_true",
                        help="decode every image fully to catch truncated files (default: header only)")
    add_common_arguments(parser, out_required=False)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr convert folders``."""
    if (args.out is None) == (args.out_dir is None):
        raise ConfigError("give exactly one of --out FILE (one file, 'split' on each image) or --out-dir DIR")
    if args.out_dir is not None:
        if args.layout == "classes":
            raise ConfigError("--out-dir needs split folders; use --out with --layout classes")
        _, report = convert_class_folders_by_split(args.root, args.out_dir, verify_images=args.verify_images,
                                                   workers=args.workers, indent=args.indent)
    else:
        _, report = convert_class_folders(args.root, args.out, layout=args.layout,
                                          verify_images=args.verify_images, workers=args.workers,
                                          indent=args.indent)
    print(report.format())
    return 0
