"""Image + mask folders -> COCO (``cococxr convert masks``).

Images in one folder, masks in another, paired by stem (``x.png`` <-> ``x<suffix>.*``;
the mask's extension may differ). A binary mask (any non-zero pixel) becomes one class;
a multi-class mask maps pixel values or RGB colours to class names with a class map.
Each (image, class) becomes one lossless COCO RLE annotation (``iscrowd: 0``), or one per
8-connected component with ``instances=True``. Background (0) is never exported. See
:mod:`converters.mask_records` for the size-mismatch policy.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError

from .common import (ConversionReport, finish, ignored_files, indent_option, info_image_root, list_images,
                     note_ignored, out_option, verify_images_option, workers_option)
from .image_metadata import MetadataTable, parse_keep, read_metadata
from .mask_records import SIZE_POLICIES, MaskDecoder, MaskItem, MaskOptions, assemble, convert_items, raise_problems
from .mask_values import LOSSY_THRESHOLD, MaskValuePolicy

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


# The options of the mask converters (masks and covid-radiography), in their --help order.
def size_mismatch_option():
    """``--size-mismatch``: the size policy (see :mod:`converters.mask_records`)."""
    return option("resize", "mask size != image size: 'resize' enlarges a smaller mask of the same aspect "
                            "ratio (nearest neighbour, recorded as mask_resized_from), 'resize-any' also "
                            "shrinks larger ones, 'error' refuses both (default: resize)", choices=SIZE_POLICIES)


def allow_missing_masks_option():
    """``--allow-missing-masks``."""
    return option(False, "record images without a mask, unannotated (default: error)")


def instances_option():
    """``--instances``: one annotation per 8-connected component."""
    return option(False, "one annotation per connected component (default: one per image and class)")


def polygons_option():
    """``--polygons``: polygon segmentations (lossy; the report gives the IoU)."""
    return option(False, "polygon segmentations (lossy) instead of RLE")


def mask_threshold_option():
    """``--mask-threshold T``: binary masks, value > T is foreground (see :mod:`converters.mask_values`)."""
    return option(None, "binary masks: value > T is foreground (default: a mask must hold 0 and one other value; "
                        "several values, e.g. an anti-aliased halo, are an error)", metavar="T")


def allow_lossy_masks_option():
    """``--allow-lossy-masks``: convert JPEG masks, thresholded."""
    return option(False, f"convert JPEG (lossy) binary masks, thresholded at --mask-threshold (default "
                         f"{LOSSY_THRESHOLD}); default: a JPEG mask is an error")


def value_policy(opts, class_map: bool) -> MaskValuePolicy:
    """The mask-value policy of a converter's options."""
    return MaskValuePolicy(threshold=opts.mask_threshold, allow_lossy=opts.allow_lossy_masks, class_map=class_map)


def keep_option():
    """``--keep``: ``"col:key,col2"`` metadata columns kept on image records (default: all)."""
    return option(None, "metadata columns to keep as image keys, 'col:new_key,col2' (default: all)", parse=parse_keep)


@dataclass
class MaskFolderOptions:
    """The options of :func:`convert_mask_folders` and ``cococxr convert masks``.

    ``file_name`` is relative to ``images`` and ``info.image_root`` points at it (relative
    to ``out``'s folder, absolute when ``out`` is None). Without ``class_map`` masks are
    binary (any non-zero pixel is ``class_name``); ``class_map`` is ``{value: name}`` or
    text / a JSON file for :func:`parse_class_map`. ``metadata`` rows add extra image keys
    (see :mod:`converters.image_metadata`).
    """

    images: PathArg = option(None, "folder of images", positional=True, required=True)
    masks: PathArg = option(None, "folder of masks (same stem, optional suffix; extension may differ)",
                            positional=True, required=True)
    class_name: str = option("foreground", "class of binary masks: any non-zero pixel (default: foreground)")
    class_map: dict | None = option(None, "multi-class masks: '1=left_lung,2=right_lung', '255,0,0=lung;0,255,0=heart' "
                                          "or a JSON file {\"1\": \"left_lung\"}; 0 is background",
                                    parse=parse_class_map)
    supercategory: str = option("anatomy", "supercategory of the classes (default: anatomy)")
    mask_suffix: str = option("", "mask stem = image stem + SUFFIX, e.g. _mask")
    metadata: PathArg | None = option(None, "CSV of per-image facts to attach (see --metadata-key, --keep)")
    metadata_key: str = option("filename", "metadata column naming the image file (default: filename)")
    label_column: str | None = option(None, "metadata column to add as image-level labels (e.g. finding)")
    size_mismatch: str = size_mismatch_option()
    mask_threshold: int | None = mask_threshold_option()
    allow_lossy_masks: bool = allow_lossy_masks_option()
    allow_missing_masks: bool = allow_missing_masks_option()
    instances: bool = instances_option()
    polygons: bool = polygons_option()
    verify_images: bool = verify_images_option()
    keep: list | None = keep_option()
    out: PathArg | None = out_option()
    workers: int = workers_option()
    indent: int | None = indent_option()


def convert_mask_folders(images: PathArg, masks: PathArg, out: PathArg | None = None, **options):
    """Convert an image folder and a mask folder into one COCO dataset.

    Args:
        images: folder of images.
        masks: folder of masks.
        out: COCO JSON to write atomically (nothing is written when None).
        **options: the other fields of :class:`MaskFolderOptions` (``class_map``,
            ``class_name``, ``instances``, ``polygons``, ``size_mismatch``, ``metadata``, ...).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: pairing problems, unreadable files, size or value mismatches.
        ConfigError: bad or unknown options.
    """
    opts = load_options(MaskFolderOptions, images=images, masks=masks, out=out, **options)
    decoder = (MaskDecoder.from_class_map(opts.class_map) if opts.class_map is not None
               else MaskDecoder.binary(opts.class_name))
    report = ConversionReport(source=f"{opts.images} + {opts.masks}")
    table = read_metadata(opts.metadata, opts.metadata_key, opts.keep, opts.label_column) if opts.metadata else None
    pairs = pair_masks(opts.images, opts.masks, opts.mask_suffix, opts.allow_missing_masks)
    report.add("images in", len(pairs))
    report.add("masks in", sum(m is not None for _, m in pairs))
    folders = {Path(p).resolve(): Path(p) for p in (opts.masks, opts.images)}.values()
    note_ignored(report, [entry for folder in folders for entry in ignored_files(folder)])
    items = [MaskItem(str(image), image.name, str(mask) if mask else None) for image, mask in pairs]
    items, extras = attach_metadata(items, table, report)
    policy = value_policy(opts, class_map=opts.class_map is not None)
    mask_options = MaskOptions(decoder, instances=opts.instances, polygons=opts.polygons, size_mismatch=opts.size_mismatch,
                               verify_images=opts.verify_images, values=policy)
    results = convert_items(items, mask_options, opts.workers)
    info = {"description": f"image + mask folders {Path(opts.images).name} + {Path(opts.masks).name}",
            "image_root": info_image_root(opts.images, opts.out)}
    builder = assemble(items, results, decoder, report, info=info, supercategory=opts.supercategory, extras=extras,
                       values=policy)
    return finish(builder, opts.images, opts.out, report, opts.indent, checked=True)
