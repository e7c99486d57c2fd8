"""COVID-19 Radiography Database layout -> COCO (``cococxr convert covid-radiography``).

The Kaggle dataset's layout is ``ROOT/<Class>/images/*.png`` and ``ROOT/<Class>/masks/*.png``
(masks at 256x256 for 299x299 images). Each image gets its lung mask as one ``lung``
annotation (supercategory ``anatomy``; masks are enlarged to the image with nearest
neighbour and recorded as ``mask_resized_from``) and an image-level label whose category
is the class folder's name (supercategory ``finding``). ``file_name`` is relative to ROOT.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError

from .common import (ConversionReport, finish, ignored_files, indent_option, info_image_root, list_images,
                     note_ignored, out_option, verify_images_option, workers_option)
from .image_metadata import read_metadata
from .mask_folders import (allow_lossy_masks_option, allow_missing_masks_option, attach_metadata, instances_option,
                           keep_option, mask_threshold_option, pair_masks, polygons_option, size_mismatch_option,
                           value_policy)
from .mask_records import MaskDecoder, MaskItem, MaskOptions, assemble, convert_items, raise_problems


def class_folders(root: Path) -> list[Path]:
    """Class folders of the layout: sub-folders of ``root`` holding an ``images`` folder.

    Raises:
        ConfigError: no class folder.
        ConversionError: a folder with ``masks`` but no ``images`` (its masks would be dropped).
    """
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    folders = sorted(p for p in root.iterdir() if (p / "images").is_dir())
    orphans = sorted(p.name for p in root.iterdir() if (p / "masks").is_dir() and not (p / "images").is_dir())
    if orphans:
        raise ConversionError(f"{root}: class folder(s) {', '.join(map(repr, orphans))} have a masks folder but no "
                              "images folder; their masks would be dropped. Add <Class>/images or move the folder")
    if not folders:
        raise ConfigError(f"{root}: no <Class>/images folders; expected the COVID-19 Radiography Database layout")
    return folders


def ignored_entries(root: Path) -> list[tuple[Path, str]]:
    """Every file of the tree the conversion leaves out, with the reason."""
    ignored = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            ignored.append((entry, "not inside a class folder"))
        elif not (entry / "images").is_dir():
            ignored += [(p, "in a folder without images/") for p in sorted(entry.rglob("*")) if p.is_file()]
        else:
            for sub in sorted(entry.iterdir()):
                if sub.name in ("images", "masks") and sub.is_dir():
                    ignored += ignored_files(sub)
                else:
                    ignored += [(p, "not in images/ or masks/") for p in [sub, *sorted(sub.rglob("*"))]
                                if p.is_file()]
    return ignored


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


@dataclass
class CovidRadiographyOptions:
    """The options of :func:`convert_covid_radiography` and ``cococxr convert covid-radiography``.

    ``manifest`` rows add extra image keys, matched by ``manifest_key`` (relative path,
    base name or stem); ``allow_missing_masks`` also converts classes without a masks
    folder, as labels only.
    """

    root: PathArg = option(None, "folder with <Class>/images/*.png and <Class>/masks/*.png", positional=True,
                           required=True)
    manifest: PathArg | None = option(None, "CSV of per-image facts to attach (see --manifest-key, --keep)")
    manifest_key: str = option("file", "manifest column naming the image: relative path, base name or stem "
                                       "(default: file)")
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


def convert_covid_radiography(root: PathArg, out: PathArg | None = None, **options):
    """Convert a COVID-19 Radiography Database tree into one COCO dataset.

    Args:
        root: the folder holding ``<Class>/images`` (and ``<Class>/masks``).
        out: COCO JSON to write atomically (nothing is written when None).
        **options: the other fields of :class:`CovidRadiographyOptions`.

    Returns:
        ``(CocoDataset, ConversionReport)``.
    """
    opts = load_options(CovidRadiographyOptions, root=root, out=out, **options)
    root = Path(opts.root)
    report = ConversionReport(source=str(root))
    table = read_metadata(opts.manifest, opts.manifest_key, opts.keep) if opts.manifest else None
    items = collect_items(root, opts.allow_missing_masks)
    report.add("images in", len(items))
    report.add("masks in", sum(i.mask is not None for i in items))
    note_ignored(report, ignored_entries(root), root)
    items, extras = attach_metadata(items, table, report)
    mask_options = MaskOptions(MaskDecoder.binary("lung"), instances=opts.instances, polygons=opts.polygons,
                               size_mismatch=opts.size_mismatch, verify_images=opts.verify_images,
                               values=value_policy(opts, class_map=False))
    results = convert_items(items, mask_options, opts.workers)
    info = {"description": f"COVID-19 Radiography Database layout {root.name}",
            "image_root": info_image_root(root, opts.out)}
    labels = [folder.name for folder in class_folders(root)]
    builder = assemble(items, results, mask_options.decoder, report, info=info, supercategory="anatomy",
                       extras=extras, label_names=labels, values=mask_options.values)
    return finish(builder, root, opts.out, report, opts.indent, checked=True)
