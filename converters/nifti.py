"""NIfTI image + label volumes -> slice PNGs + COCO (``cococxr convert nifti``).

One COCO image per slice along ``axis`` (default axial), in the canonical orientation
of :mod:`cococxr.volumes.layout`; one annotation (compressed RLE, iscrowd 0) per label
value per slice. Slices are 16-bit PNGs with ``raw = rescale_slope * png +
rescale_intercept`` recorded, or 8-bit through ``window``. See
:mod:`converters.nifti_cases` for the layouts (pairs, folders, nnU-Net, MSD) and
docs/internals.md for the image-record keys.

Everything is checked before it is kept: the PNGs go to a staging folder that replaces
nothing until every case converted, and the JSON is written atomically last.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError
from cococxr.volumes.intensity import Rescale, apply_window, parse_window, window_record
from cococxr.volumes.labelmaps import read_label_map
from cococxr.volumes.layout import AXES, SliceLayout
from cococxr.volumes.nifti_io import AFFINE_TOLERANCE, check_same_grid, integer_labels, load_nifti
from cococxr.volumes.staging import StagedFolder

from .common import ConversionReport, image_root_hint, parallel_map
from .nifti_cases import NiftiCase, find_cases
from .volume_records import (CaseResult, Category, SliceResult, assemble_volumes, label_slice_annotations,
                             out_images_option, out_json_option, slice_file_name, write_slice_png)

MAX_LISTED = 10


@dataclass
class NiftiOptions:
    """Options of :func:`convert_nifti` and ``cococxr convert nifti``."""

    source: PathArg = option(None, "image .nii(.gz), folder of images, or nnU-Net / MSD dataset folder "
                                   "(imagesTr/, labelsTr/, dataset.json)", positional=True, required=True)
    labels: PathArg | None = option(None, "label .nii(.gz) or folder of label volumes (for a file or a plain "
                                          "image folder)", positional=True)
    out: PathArg | None = out_json_option()
    out_images: PathArg | None = out_images_option()
    label_map: PathArg | None = option(None, "label value -> name: JSON {\"1\": \"spleen\"} or {\"spleen\": 1}, a "
                                   "dataset.json, CSV/TSV or 'value name' lines (default: the dataset.json's "
                                   "labels, else label_<value>)")
    axis: str = option("axial", "slice axis of the canonical orientation (default: axial)", choices=AXES)
    window: str | None = option(None, "8-bit PNGs through a CT window: lung, mediastinum, abdomen, bone, brain or "
                                "W,L (default: 16-bit PNGs, raw values recorded as rescale_slope/intercept)")
    channel: int = option(0, "channel of 4-D images (nnU-Net _0000 suffix / MSD 4th dimension; default: 0)")
    keep_empty_slices: bool = option(True, "keep slices without labels as images without annotations")
    allow_missing_labels: bool = option(False, "convert images that have no label volume, without annotations")
    affine_tolerance: float = option(AFFINE_TOLERANCE, "largest difference (mm) allowed between the image and "
                                     f"label affines (default: {AFFINE_TOLERANCE:g})")
    supercategory: str = option("anatomy", "supercategory of the label categories (default: anatomy)")
    workers: int = option(1, "parallel worker processes, one case each (output is identical for any value; default: 1)")
    indent: int | None = option(None, "indent the JSON (default: compact)")


@dataclass(frozen=True)
class _Settings:
    """What a worker needs (picklable)."""

    staging: str
    axis: str
    window: tuple[float, float] | None
    channel: int
    keep_empty: bool
    tolerance: float
    known: frozenset | None  # label values of the map (None: any)


def _unknown_values(volume: np.ndarray, known: frozenset) -> list[int]:
    values = np.flatnonzero(np.bincount(volume.ravel(), minlength=256)) if volume.dtype == np.uint8 \
        else np.unique(volume)
    return [int(v) for v in values if v and int(v) not in known]


def _check_values(labels: np.ndarray, layout: SliceLayout, known: frozenset, path: str) -> None:
    """Raise ConversionError naming the label values the map lacks and a slice where each is."""
    unknown = _unknown_values(labels, known)
    if not unknown:
        return
    where = []
    for value in unknown[:MAX_LISTED]:
        k = np.argwhere(labels == value)[0]
        where.append(f"{value} (e.g. {layout.axis} slice {layout.display_index(int(k[layout.perm[0]]))})")
    raise ConversionError(f"label volume {path} has value(s) {', '.join(where)}"
                          f"{' ...' if len(unknown) > MAX_LISTED else ''} that the label map does not list "
                          f"(known: {', '.join(map(str, sorted(known)))}); add them to the label map")


def _rescale(case: NiftiCase, data: np.ndarray) -> Rescale:
    try:
        return Rescale.of_volume(data)
    except ConfigError as exc:
        raise ConversionError(f"image {case.image}: {exc}") from exc


def convert_case(case: NiftiCase, settings: _Settings) -> CaseResult:
    """Read one case, write its slice PNGs under the staging folder, encode its label slices."""
    image = load_nifti(case.image, "image", settings.channel)
    result = CaseResult(case.case_id)
    labels = label_data = None
    if case.labels is not None:
        labels = load_nifti(case.labels, "label volume")
        check_same_grid(image, labels, settings.tolerance)
        label_data = integer_labels(labels)
    layout = SliceLayout.from_affine(image.shape, image.affine, settings.axis, f"image {case.image}")
    if label_data is not None and settings.known is not None:
        _check_values(label_data, layout, settings.known, case.labels)
    if image.channels > 1:
        result.notes.append(f"{case.image_name}: channel {settings.channel} of {image.channels} converted")
    rescale = None if settings.window else _rescale(case, image.data)
    if rescale is not None and not rescale.exact:
        top = rescale.intercept + 65535 * rescale.slope
        result.notes.append(f"{case.image_name}: values {rescale.intercept:g}..{top:g} do not fit 16 bits exactly; "
                            f"quantised with slope {rescale.slope:.6g}")
    base = {"case_id": case.case_id, "volume": case.image_name}
    if case.labels_name is not None:
        base.update(label_volume=case.labels_name, label_dtype=str(labels.disk_dtype))
    base.update(layout.record())
    base.update(window_record(settings.window) if settings.window else rescale.record())
    if not settings.keep_empty:
        base["empty_slices_omitted"] = True
    height, width = layout.slice_shape
    for d in range(layout.num_slices):
        annotations = (label_slice_annotations(layout.take_slice(label_data, d)) if label_data is not None else [])
        if not annotations and not settings.keep_empty:
            result.counts["empty slices left out"] += 1
            continue
        voxels = layout.take_slice(image.data, d)
        pixels = apply_window(voxels, settings.window) if settings.window else rescale.encode(voxels)
        name = slice_file_name(case.case_id, settings.axis, d, layout.num_slices)
        write_slice_png(settings.staging, name, pixels)
        result.slices.append(SliceResult(name, height, width, {**base, "slice_index": d}, annotations))
    return result


def _categories(label_map: dict[int, str] | None, results: list[CaseResult], supercategory: str,
                report: ConversionReport) -> list[Category]:
    if label_map is not None:
        return [Category(value, name, supercategory) for value, name in label_map.items()]
    values = sorted({v for r in results for s in r.slices for v, _ in s.annotations})
    if values:
        report.notes.append(f"no label map: categories named label_<value> for values {values[:20]}"
                            f"{' ...' if len(values) > 20 else ''} (give --label-map for names)")
    return [Category(v, f"label_{v}", supercategory) for v in values]


def convert_nifti(source: PathArg, labels: PathArg | None = None, **options):
    """Convert NIfTI volumes into slice PNGs and one COCO dataset.

    Args:
        source: an image file, a folder of images, or an nnU-Net / MSD dataset folder.
        labels: the label file or folder (for a file or a plain image folder).
        **options: the other fields of :class:`NiftiOptions` (``out`` and ``out_images`` are
            required).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: unpaired files, shapes or affines that disagree, label values the
            map lacks; ImageReadError: unreadable or truncated files. Nothing is written then.
        ConfigError: bad options.
    """
    opts = load_options(NiftiOptions, source=source, labels=labels, **options)
    window = parse_window(opts.window)
    found = find_cases(source, labels, channel=opts.channel, allow_missing_labels=opts.allow_missing_labels)
    label_map = read_label_map(opts.label_map) if opts.label_map else found.label_map
    report = ConversionReport(source=f"{source}" + (f" + {labels}" if labels else ""))
    report.add("cases in", len(found.cases))
    if found.ignored:
        report.notes.append(f"{found.ignored} image file(s) of other channels than {opts.channel} ignored")
    out_images = Path(opts.out_images)
    with StagedFolder(out_images) as staged:
        settings = _Settings(str(staged.root), opts.axis, window, opts.channel, opts.keep_empty_slices,
                             opts.affine_tolerance, frozenset(label_map) if label_map is not None else None)
        results = parallel_map(functools.partial(convert_case, settings=settings), found.cases, opts.workers,
                               desc="volumes", chunksize=1)
        report.add("image volumes in", len(results))
        report.add("label volumes in", sum(c.labels is not None for c in found.cases))
        categories = _categories(label_map, results, opts.supercategory, report)
        info = {"description": f"NIfTI volumes ({found.layout}) {Path(source).name}",
                "image_root": image_root_hint(out_images, opts.out)}
        dataset = assemble_volumes(results, categories, report, info=info, image_root=out_images)
        staged.commit()
    dataset.write(opts.out, indent=opts.indent)
    report.output = str(opts.out)
    return dataset, report



__all__ = ["NiftiOptions", "convert_case", "convert_nifti"]
