"""Class-per-folder trees -> COCO image-level labels (``cococxr convert folders``).

Two layouts: ``ROOT/<Class>/*`` and ``ROOT/<Split>/<Class>/*`` (e.g. ``Train/COVID/x.png``).
Every image gets one label annotation whose category is its class folder (supercategory
``finding``). Categories are the sorted union of class names over all splits, so ids are
the same in every file written. ``file_name`` is relative to ROOT. With splits, either
one file holds everything and each image record has ``split`` (folder name, lower case),
or :func:`convert_class_folders_by_split` writes one file per split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cococxr.coco import CocoBuilder
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError
from cococxr.io import image_size, read_image

from .common import (ConversionReport, finish, ignored_files, indent_option, info_image_root, list_images,
                     note_ignored, out_option, parallel_map, verify_images_option, workers_option)

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


def scan_tree(root: str | os.PathLike, layout: str = "auto",
              ignored: list[tuple[Path, str]] | None = None) -> list[LabelledImage]:
    """List every image of the tree with its class and split, sorted by relative path.

    Files left out (not an image type, or outside any class folder) are appended to
    ``ignored`` as ``(path, reason)``.

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
    ignored = [] if ignored is None else ignored
    tops = [root] + (_subfolders(root) if layout == "splits" else [])
    ignored += [(p, "not inside a class folder") for top in tops for p in sorted(top.iterdir()) if not p.is_dir()]
    for split, classes in groups:
        for folder in classes:
            found = list_images(folder, recursive=True)
            ignored += ignored_files(folder, recursive=True)
            empty += [] if found else [str(folder)]
            images += [LabelledImage(p, p.relative_to(root).as_posix(), folder.name, split) for p in found]
    if empty:
        raise ConversionError(f"class folder(s) without images: {', '.join(empty)}")
    return sorted(images, key=lambda i: i.file_name)


def _shape(path: Path, verify: bool) -> tuple[int, int]:
    """Image (height, width): header only, or a full decode when ``verify``."""
    return tuple(read_image(path).shape[:2]) if verify else image_size(path)


def _build(images: list[LabelledImage], shapes: dict[Path, tuple[int, int]], classes: list[str],
           info: dict, split_key: bool, report: ConversionReport) -> CocoBuilder:
    """The records of ``images``, all ``classes`` as categories in the same order."""
    builder = CocoBuilder(info=info)
    ids = {name: builder.add_category(name, supercategory="finding") for name in classes}
    for image in images:
        extra = {"split": image.split} if split_key and image.split else {}
        image_id = builder.add_image(image.file_name, *shapes[image.path], **extra)
        builder.add_label(image_id, ids[image.label])
        report.add(f"labels out: {image.label}" + (f" ({image.split})" if image.split else ""))
    return builder


def _scan_and_measure(root, layout, verify_images, workers, report):
    """Scan the tree and read every image's size (in parallel)."""
    ignored: list[tuple[Path, str]] = []
    images = scan_tree(root, layout, ignored)
    report.add("images in", len(images))
    note_ignored(report, ignored, root)
    sizes = parallel_map(partial(_shape, verify=verify_images), [i.path for i in images], workers, desc="images")
    return images, dict(zip((i.path for i in images), sizes, strict=True)), sorted({i.label for i in images})


@dataclass
class ClassFolderOptions:
    """The options of ``cococxr convert folders`` (:func:`convert_class_tree`).

    :func:`convert_class_folders` takes them all but ``out_dir``;
    :func:`convert_class_folders_by_split` all but ``out`` (its layout is ``splits``).
    """

    root: PathArg = option(None, "ROOT/<Class>/* or ROOT/<Split>/<Class>/* (e.g. Train/COVID/x.png)",
                           positional=True, required=True)
    out_dir: PathArg | None = option(None, "write one COCO file per split: OUT_DIR/<split>.json",
                                     role="output")
    layout: str = option("auto", "'splits' (ROOT/<Split>/<Class>), 'classes' (ROOT/<Class>) or 'auto' "
                                 "(splits when no top folder holds images itself; default)", choices=LAYOUTS)
    verify_images: bool = verify_images_option()
    out: PathArg | None = out_option(cli_required=False)
    workers: int = workers_option()
    indent: int | None = indent_option()


def convert_class_folders(root: PathArg, out: PathArg | None = None, **options):
    """Convert a class-per-folder tree into one COCO dataset of image-level labels.

    Args:
        root: ``ROOT/<Class>/*`` or ``ROOT/<Split>/<Class>/*``.
        out: COCO JSON to write atomically (nothing is written when None).
        **options: ``layout`` (``"auto"``, ``"splits"`` or ``"classes"``), ``verify_images``,
            ``workers``, ``indent`` (see :class:`ClassFolderOptions`).

    Returns:
        ``(CocoDataset, ConversionReport)``; with splits, each image has ``split``.
    """
    opts = load_options(ClassFolderOptions, root=root, out=out, **options)
    if opts.out_dir is not None:
        raise ConfigError("out_dir writes one file per split: call convert_class_folders_by_split")
    root = Path(opts.root)
    report = ConversionReport(source=str(root))
    images, shapes, classes = _scan_and_measure(root, opts.layout, opts.verify_images, opts.workers, report)
    info = {"description": f"class folders {root.name}", "image_root": info_image_root(root, opts.out)}
    builder = _build(images, shapes, classes, info, True, report)
    report.add("images out", len(images))
    return finish(builder, root, opts.out, report, opts.indent)


def convert_class_folders_by_split(root: PathArg, out_dir: PathArg | None = None, **options):
    """Convert ``ROOT/<Split>/<Class>/*`` into one COCO dataset per split.

    Every dataset has every class as a category, with the same ids. When ``out_dir`` is
    given, ``<out_dir>/<split>.json`` files are written (atomically, each after all are built).

    Args:
        root: the tree.
        out_dir: the folder of the split files (nothing is written when None).
        **options: ``verify_images``, ``workers``, ``indent`` (see :class:`ClassFolderOptions`).

    Returns:
        ``({split: CocoDataset}, ConversionReport)``.

    Raises:
        ConfigError: the tree has no split level.
    """
    opts = load_options(ClassFolderOptions, root=root, out_dir=out_dir, **options)
    if opts.out is not None:
        raise ConfigError("convert_class_folders_by_split writes OUT_DIR/<split>.json: pass out_dir, not out")
    if opts.layout == "classes":
        raise ConfigError("--out-dir needs split folders; use --out with --layout classes")
    root = Path(opts.root)
    if detect_layout(root) != "splits":
        raise ConfigError(f"{root}: no <Split>/<Class> folders; write a single file with --out instead")
    report = ConversionReport(source=str(root))
    images, shapes, classes = _scan_and_measure(root, "splits", opts.verify_images, opts.workers, report)
    datasets = {}
    for split in sorted({i.split for i in images}):
        target = Path(opts.out_dir) / f"{split}.json" if opts.out_dir is not None else None
        info = {"description": f"class folders {root.name}, split {split}",
                "image_root": info_image_root(root, target)}
        datasets[split] = _build([i for i in images if i.split == split], shapes, classes, info, False,
                                 report).build(root)
    report.add("images out", sum(len(d.imgs) for d in datasets.values()))
    if opts.out_dir is not None:
        for split, dataset in datasets.items():
            dataset.write(Path(opts.out_dir) / f"{split}.json", indent=opts.indent)
        report.output = ", ".join(str(Path(opts.out_dir) / f"{s}.json") for s in datasets)
    return datasets, report


def convert_class_tree(root: PathArg, **options):
    """What ``cococxr convert folders`` runs: one file (``out``, each image has ``split``) or
    one per split (``out_dir``); exactly one of them.

    Returns:
        As :func:`convert_class_folders` or :func:`convert_class_folders_by_split`.
    """
    opts = load_options(ClassFolderOptions, root=root, **options)
    if (opts.out is None) == (opts.out_dir is None):
        raise ConfigError("give exactly one of --out FILE (one file, 'split' on each image) or --out-dir DIR")
    if opts.out_dir is not None:
        return convert_class_folders_by_split(**vars(opts))
    return convert_class_folders(**vars(opts))
