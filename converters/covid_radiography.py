"""COVID-19 Radiography Database layout -> COCO (``cococxr convert covid-radiography``).

The Kaggle dataset's layout is ``ROOT/<Class>/images/*.png`` and ``ROOT/<Class>/masks/*.png``
(masks at 256x256 for 299x299 images). Each image gets its lung mask as one ``lung``
annotation (supercategory ``anatomy``; masks are enlarged to the image with nearest
neighbour and recorded as ``mask_resized_from``) and an image-level label whose category
is the class folder's name (supercategory ``finding``). ``file_name`` is relative to ROOT.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from cococxr.errors import ConfigError, ConversionError

from .common import ConversionReport, image_root_hint, list_images
from .image_metadata import read_metadata
from .mask_folders import add_mask_arguments, attach_metadata, pair_masks, write_output
from .mask_records import MaskDecoder, MaskItem, MaskOptions, assemble, convert_items, raise_problems


def class_folders(root: Path) -> list[Path]:
    """Class folders of the layout: sub-folders of ``root`` holding an ``images`` folder."""
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    folders = sorted(p for p in root.iterdir() if (p / "images").is_dir())
    if not folders:
        raise ConfigError(f"{root}: no <Class>/images folders; expected the COVID-19 Radiography Database layout")
    return folders


def collect_items(root: Path, allow_missing_masks: bool) -> list[MaskItem]:
    """Pair images and masks in every class folder; raise one error listing every problem."""
    items, problems = [], []
    for folder in class_folders(root):
        masks = folder / "masks"
        if not masks.is_dir():
            if not allow_missing_masks:
                problems.append(f"class {folder.name!r} has no masks folder ({masks}); "
                                "--allow-missing-masks converts its images as labels only")
            pairs = [(image, None) for image in list_images(folder / "images")]
        else:
            try:
                pairs = pair_masks(folder / "images", masks, allow_missing_masks=allow_missing_masks)
            except ConversionError as exc:  # collect every class's problems before raising
                problems.append(str(exc))
                continue
        items += [MaskItem(str(image), image.relative_to(root).as_posix(), str(mask) if mask else None,
                           folder.name) for image, mask in pairs]
    raise_problems(problems, str(root))
    return items


def convert_covid_radiography(root: str | os.PathLike, out: str | os.PathLike | None = None, *,
                              allow_missing_masks: bool = False, size_mismatch: str = "resize",
                              instances: bool = False, polygons: bool = False,
                              manifest: str | os.PathLike | None = None, manifest_key: str = "file",
                              keep: str | None = None, verify_images: bool = False, workers: int = 1,
                              indent: int | None = None):
    """Convert a COVID-19 Radiography Database tree into one COCO dataset.

    Args:
        root: the folder holding ``<Class>/images`` (and ``<Class>/masks``).
        out: COCO JSON to write atomically (nothing is written when None).
        allow_missing_masks: images without a mask (or classes without a masks folder)
            get only their label.
        size_mismatch: size policy (see :mod:`converters.mask_records`).
        instances: one lung annotation per connected component.
        polygons: polygon segmentations (lossy) instead of RLE.
        manifest: CSV of per-image facts (e.g. the data set's metadata sheet as CSV).
        manifest_key: its column naming the image (relative path, base name or stem).
        keep: ``"col:key,col2"`` manifest columns to keep (default: all).
        verify_images: decode every image fully (default reads only its header).
        workers: worker processes; the output is identical for any value.
        indent: JSON indent.

    Returns:
        ``(CocoDataset, ConversionReport)``.
    """
    root = Path(root)
    report = ConversionReport(source=str(root))
    table = read_metadata(manifest, manifest_key, keep) if manifest else None
    items = collect_items(root, allow_missing_masks)
    report.add("images in", len(items))
    report.add("masks in", sum(i.mask is not None for i in items))
    items, extras = attach_metadata(items, table, report)
    options = MaskOptions(MaskDecoder.binary("lung"), instances=instances, polygons=polygons,
                          size_mismatch=size_mismatch, verify_images=verify_images)
    results = convert_items(items, options, workers)
    info = {"description": f"COVID-19 Radiography Database layout {root.name}",
            "image_root": image_root_hint(root, out) if out is not None else str(root.resolve())}
    labels = [folder.name for folder in class_folders(root)]
    dataset = assemble(items, results, options.decoder, report, info=info, image_root=root,
                       supercategory="anatomy", extras=extras, label_names=labels)
    write_output(dataset, out, report, indent)
    return dataset, report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr convert covid-radiography``."""
    parser.add_argument("root", help="folder with <Class>/images/*.png and <Class>/masks/*.png")
    parser.add_argument("--manifest", help="CSV of per-image facts to attach (see --manifest-key, --keep)")
    parser.add_argument("--manifest-key", default="file",
                        help="manifest column naming the image: relative path, base name or stem (default: file)")
    add_mask_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr convert covid-radiography``."""
    _, report = convert_covid_radiography(
        args.root, args.out, allow_missing_masks=args.allow_missing_masks, size_mismatch=args.size_mismatch,
        instances=args.instances, polygons=args.polygons, manifest=args.manifest, manifest_key=args.manifest_key,
        keep=args.keep, verify_images=args.verify_images, workers=args.workers, indent=args.indent)
    print(report.format())
    return 0
