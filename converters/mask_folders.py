"""Image + mask folders -> COCO (``cococxr convert masks``).

Images in one folder, masks in another, paired by stem (``x.png`` <-> ``x<suffix>.*``;
the mask's extension may differ). A binary mask (any non-zero pixel) becomes one class;
a multi-class mask maps pixel values or RGB colours to class names with a class map.
Each (image, class) becomes one lossless COCO RLE annotation (``iscrowd: 0``), or one per
8-connected component with ``instances=True``. Background (0) is never exported. See
:mod:`converters.mask_records` for the size-mismatch policy.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from cococxr.errors import ConfigError

from .common import ConversionReport, add_common_arguments, image_root_hint, list_images
from .image_metadata import MetadataTable, read_metadata
from .mask_records import SIZE_POLICIES, MaskDecoder, MaskItem, MaskOptions, assemble, convert_items, raise_problems

_KEY = re.compile(r"^\s*(\d+)\s*(?:,\s*(\d+)\s*,\s*(\d+)\s*)?$")
_NAME_THEN_KEY = re.compile(r"^(.*?)\s*,\s*(\d+(?:\s*,\s*\d+\s*,\s*\d+)?)\s*$")


def _parse_key(text: str) -> int | tuple[int, int, int]:
    """``"3"`` -> 3, ``"255,0,0"`` -> (255, 0, 0)."""
    match = _KEY.match(str(text))
    if not match:
        raise ConfigError(f"class map key {text!r}: expected an integer or R,G,B")
    r, g, b = match.groups()
    return (int(r), int(g), int(b)) if g is not None else int(r)


def parse_class_map(spec: str | os.PathLike | dict) -> dict:
    """Parse a class map: ``"1=left_lung,2=right_lung"``, ``"255,0,0=lung;0,255,0=heart"``,
    a JSON file holding ``{"1": "left_lung", "255,0,0": "lung"}``, or such a dict.

    Returns:
        ``{value: name}`` with int or ``(r, g, b)`` keys, in the given order.

    Raises:
        ConfigError: the text or file cannot be parsed.
    """
    if isinstance(spec, dict):
        return {(_parse_key(k) if isinstance(k, str) else k): v for k, v in spec.items()}
    text = str(spec)
    if text.lower().endswith(".json") or ("=" not in text and Path(text).is_file()):
        try:
            data = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--class-map {text}: cannot read the JSON class map ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"--class-map {text}: expected a JSON object {{\"value\": \"name\"}}")
        return parse_class_map(data)
    pieces = text.replace(";", ",").split("=")
    if len(pieces) < 2:
        raise ConfigError(f"--class-map {text!r}: expected value=name pairs, e.g. 1=left_lung,2=right_lung")
    keys, names = [pieces[0]], []
    for piece in pieces[1:-1]:
        match = _NAME_THEN_KEY.match(piece)
        if not match:
            raise ConfigError(f"--class-map {text!r}: cannot split {piece!r} into a name and the next value")
        names.append(match.group(1).strip())
        keys.append(match.group(2))
    names.append(pieces[-1].strip().rstrip(",").strip())
    result = {}
    for key, name in zip(keys, names, strict=True):
        value = _parse_key(key)
        if value in result:
            raise ConfigError(f"--class-map {text!r}: value {key.strip()} is listed twice")
        result[value] = name
    return result


def pair_masks(images_dir: str | os.PathLike, masks_dir: str | os.PathLike, mask_suffix: str = "",
               allow_missing_masks: bool = False) -> list[tuple[Path, Path | None]]:
    """Pair each image with its mask by stem.

    Returns:
        ``[(image, mask or None), ...]`` in file name order.

    Raises:
        ConversionError: listing every image without a mask (unless allowed), every
            mask without an image, and every ambiguous stem.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder")
    same = images_dir.resolve() == masks_dir.resolve()
    if same and not mask_suffix:
        raise ConfigError(f"images and masks are both in {images_dir}: give --mask-suffix to tell them apart")
    images = [p for p in list_images(images_dir) if not (same and p.stem.endswith(mask_suffix))]
    problems: list[str] = []
    by_stem: dict[str, Path] = {}
    for image in images:
        if image.stem in by_stem:
            problems.append(f"images {by_stem[image.stem].name} and {image.name} share the stem "
                            f"{image.stem!r}: which one a mask belongs to is ambiguous")
        by_stem.setdefault(image.stem, image)
    masks: dict[str, Path] = {}
    for mask in list_images(masks_dir):
        if same and not mask.stem.endswith(mask_suffix):
            continue
        if not mask.stem.endswith(mask_suffix):
            problems.append(f"mask {mask} does not end with the mask suffix {mask_suffix!r}")
            continue
        stem = mask.stem[:len(mask.stem) - len(mask_suffix)]
        if stem in masks:
            problems.append(f"masks {masks[stem].name} and {mask.name} are both for stem {stem!r}")
        elif stem not in by_stem:
            problems.append(f"mask {mask} has no image (expected {images_dir / stem}.<ext>)")
        masks.setdefault(stem, mask)
    if not allow_missing_masks:
        problems += [f"image {image} has no mask (expected {masks_dir / (image.stem + mask_suffix)}.<ext>; "
                     "--allow-missing-masks records it unannotated)" for image in images if image.stem not in masks]
    raise_problems(problems, f"pairing {images_dir} with {masks_dir}")
    return [(image, masks.get(image.stem)) for image in images]


def attach_metadata(items: list[MaskItem], table: MetadataTable | None,
                    report: ConversionReport) -> tuple[list[MaskItem], dict[str, dict]]:
    """Give items their metadata label and return the extra image keys per file name."""
    if table is None:
        return items, {}
    extras, labelled, used = {}, [], set()
    for item in items:
        key = table.row_key(item.file_name)
        if key is None:
            report.add("images without metadata row")
            labelled.append(item)
            continue
        used.add(key)
        extras[item.file_name] = table.extras(table.rows[key])
        labelled.append(MaskItem(item.image, item.file_name, item.mask, table.label(table.rows[key]) or item.label))
    report.add("metadata rows matched", len(used))
    if len(table.rows) > len(used):
        report.notes.append(f"{len(table.rows) - len(used)} row(s) of {table.path} match no image (ignored)")
    return labelled, extras


def write_output(dataset, out: str | os.PathLike | None, report: ConversionReport, indent: int | None = None):
    """Write ``dataset`` atomically when ``out`` is given and record it in the report."""
    if out is not None:
        dataset.write(out, indent=indent)
        report.output = str(out)


def convert_mask_folders(images: str | os.PathLike, masks: str | os.PathLike, out: str | os.PathLike | None = None,
                         *, class_map: str | dict | None = None, class_name: str = "foreground",
                         supercategory: str = "anatomy", mask_suffix: str = "", instances: bool = False,
                         polygons: bool = False, size_mismatch: str = "resize", allow_missing_masks: bool = False,
                         metadata: str | os.PathLike | None = None, metadata_key: str = "filename",
                         keep: str | None = None, label_column: str | None = None, verify_images: bool = False,
                         workers: int = 1, indent: int | None = None):
    """Convert an image folder and a mask folder into one COCO dataset.

    Args:
        images: folder of images; ``file_name`` is relative to it and ``info.image_root``
            points at it (relative to ``out``'s folder, absolute when ``out`` is None).
        masks: folder of masks.
        out: COCO JSON to write atomically (nothing is written when None).
        class_map: ``{value: name}``, or text/JSON file for :func:`parse_class_map`;
            None means binary masks (any non-zero pixel is ``class_name``).
        class_name: the class of binary masks.
        supercategory: supercategory of the mask classes.
        mask_suffix: mask stem = image stem + this (e.g. ``"_mask"``).
        instances: one annotation per 8-connected component instead of per class.
        polygons: polygon segmentations (lossy; the report gives the IoU) instead of RLE.
        size_mismatch: ``"resize"``, ``"resize-any"`` or ``"error"`` (see mask_records).
        allow_missing_masks: record images without a mask, unannotated.
        metadata: CSV whose rows add extra image keys (see ``image_metadata``).
        metadata_key: its column naming the image.
        keep: ``"col:key,col2"`` columns to keep (default: all).
        label_column: column whose value becomes an image-level label (``"finding"``).
        verify_images: decode every image fully (default reads only its header).
        workers: worker processes; the output is identical for any value.
        indent: JSON indent.

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: pairing problems, unreadable files, size or value mismatches.
        ConfigError: bad options.
    """
    decoder = (MaskDecoder.from_class_map(parse_class_map(class_map)) if class_map is not None
               else MaskDecoder.binary(class_name))
    report = ConversionReport(source=f"{images} + {masks}")
    table = read_metadata(metadata, metadata_key, keep, label_column) if metadata else None
    pairs = pair_masks(images, masks, mask_suffix, allow_missing_masks)
    report.add("images in", len(pairs))
    report.add("masks in", sum(m is not None for _, m in pairs))
    items = [MaskItem(str(image), image.name, str(mask) if mask else None) for image, mask in pairs]
    items, extras = attach_metadata(items, table, report)
    options = MaskOptions(decoder, instances=instances, polygons=polygons, size_mismatch=size_mismatch,
                          verify_images=verify_images)
    results = convert_items(items, options, workers)
    root = image_root_hint(images, out) if out is not None else str(Path(images).resolve())
    info = {"description": f"image + mask folders {Path(images).name} + {Path(masks).name}",
            "image_root": root}
    dataset = assemble(items, results, decoder, report, info=info, image_root=images, supercategory=supercategory,
                       extras=extras)
    write_output(dataset, out, report, indent)
    return dataset, report


def add_mask_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the mask converters (size policy, geometry, metadata)."""
    parser.add_argument("--size-mismatch", choices=SIZE_POLICIES, default="resize",
                        help="mask size != image size: 'resize' enlarges a smaller mask of the same aspect "
                             "ratio (nearest neighbour, recorded as mask_resized_from), 'resize-any' also "
                             "shrinks larger ones, 'error' refuses both (default: resize)")
    parser.add_argument("--allow-missing-masks", action="store_true",
                        help="record images without a mask, unannotated (default: error)")
    parser.add_argument("--instances", action="store_true",
                        help="one annotation per connected component (default: one per image and class)")
    parser.add_argument("--polygons", action="store_true", help="polygon segmentations (lossy) instead of RLE")
    parser.add_argument("--verify-images", action="store_true",
                        help="decode every image fully to catch truncated files (default: header only)")
    parser.add_argument("--keep", help="metadata columns to keep as image keys, 'col:new_key,col2' (default: all)")
    add_common_arguments(parser)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr convert masks``."""
    parser.add_argument("images", help="folder of images")
    parser.add_argument("masks", help="folder of masks (same stem, optional suffix; extension may differ)")
    parser.add_argument("--class-name", default="foreground",
                        help="class of binary masks: any non-zero pixel (default: foreground)")
    parser.add_argument("--class-map",
                        help="multi-class masks: '1=left_lung,2=right_lung', '255,0,0=lung;0,255,0=heart' "
                             "or a JSON file {\"1\": \"left_lung\"}; 0 is background")
    parser.add_argument("--supercategory", default="anatomy", help="supercategory of the classes (default: anatomy)")
    parser.add_argument("--mask-suffix", default="", help="mask stem = image stem + SUFFIX, e.g. _mask")
    parser.add_argument("--metadata", help="CSV of per-image facts to attach (see --metadata-key, --keep)")
    parser.add_argument("--metadata-key", default="filename",
                        help="metadata column naming the image file (default: filename)")
    parser.add_argument("--label-column", help="metadata column to add as image-level labels (e.g. finding)")
    add_mask_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr convert masks``."""
    _, report = convert_mask_folders(
        args.images, args.masks, args.out, class_map=args.class_map, class_name=args.class_name,
        supercategory=args.supercategory, mask_suffix=args.mask_suffix, instances=args.instances,
        polygons=args.polygons, size_mismatch=args.size_mismatch, allow_missing_masks=args.allow_missing_masks,
        metadata=args.metadata, metadata_key=args.metadata_key, keep=args.keep, label_column=args.label_column,
        verify_images=args.verify_images, workers=args.workers, indent=args.indent)
    print(report.format())
    return 0
