"""CT/MR series + DICOM-SEG -> slice PNGs + COCO (``cococxr convert dicom-seg``).

The folder is searched recursively for image series and SEG files (more can be named
with ``--seg``); each SEG is matched to its series by frame of reference and its frames
placed by position (:mod:`converters.dicom_seg_read`). Every slice of a matched series
becomes an image (:mod:`converters.series_slices`); each segment becomes a category
(``label_value`` = segment number, coded properties kept) and one annotation per slice
it covers, overlapping segments included.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConversionError
from cococxr.volumes.dicom_series import scan_folder
from cococxr.volumes.intensity import parse_window
from cococxr.volumes.staging import StagedFolder

from .common import ConversionReport, image_root_hint
from .dicom_seg_read import place_frames, read_seg
from .series_slices import case_id_for, convert_series, match_series
from .volume_records import Category, assemble_volumes, out_images_option, out_json_option, series_folder_option


@dataclass
class DicomSegOptions:
    """Options of :func:`convert_dicom_seg` and ``cococxr convert dicom-seg``."""

    folder: PathArg = series_folder_option("SEG")
    out: PathArg | None = out_json_option()
    out_images: PathArg | None = out_images_option()
    seg: list[PathArg] | None = option(None, "SEG file(s) outside the folder (default: those found in it)",
                                       role="input")
    window: str | None = option(None, "8-bit PNGs through a CT window: lung, mediastinum, abdomen, bone, brain or "
                                "W,L (default: 16-bit PNGs of the stored values, rescale recorded)")
    fraction_threshold: float = option(0.5, "FRACTIONAL segments: a pixel is inside at this fraction or more")
    keep_empty_slices: bool = option(True, "keep slices without segments as images without annotations")
    slice_tolerance: float | None = option(None, "largest distance (mm) from a frame to its slice (default: a "
                                           "quarter of the slice spacing)")
    ignore_frame_of_reference: bool = option(False, "accept a series referenced by UID whose frame of reference "
                                             "differs from the SEG's")
    supercategory: str = option("anatomy", "supercategory of the segment categories")
    workers: int = option(1, "parallel worker processes (output is identical for any value; default: 1)")
    indent: int | None = option(None, "indent the JSON (default: compact)")


def _categories(segs, supercategory: str) -> list[Category]:
    """One category per segment label, ``label_value`` = segment number, in number order.

    Raises:
        ConversionError: one label with two numbers, or one number with two labels, across
            the SEGs (or within one).
    """
    by_name: dict[str, Category] = {}
    by_number: dict[int, str] = {}
    for seg in segs:
        for segment in seg.segments:
            name, number = segment.label, segment.number
            if by_name.get(name, None) is not None and by_name[name].value != number:
                raise ConversionError(f"SEG {seg.path}: segment {number} is called {name!r}, like segment "
                                      f"{by_name[name].value} of a SEG read before; categories need unique names "
                                      "(convert them separately)")
            if by_number.get(number, name) != name:
                raise ConversionError(f"SEG {seg.path}: segment {number} is {name!r} here and "
                                      f"{by_number[number]!r} in a SEG read before; convert them separately")
            if name not in by_name:
                extra = tuple((key, list(code)) for key, code in (("segment_category", segment.category),
                                                                   ("segment_type", segment.type)) if code)
                if segment.algorithm_type:
                    extra += (("segment_algorithm_type", segment.algorithm_type),)
                by_name[name], by_number[number] = Category(number, name, supercategory, extra), name
    return sorted(by_name.values(), key=lambda c: c.value)


def convert_dicom_seg(folder: PathArg, **options):
    """Convert image series and their DICOM-SEGs into slice PNGs and one COCO dataset.

    Args:
        folder: searched recursively for image series and SEG files.
        **options: the other fields of :class:`DicomSegOptions` (``out`` and ``out_images`` are
            required).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: no SEG, a SEG whose frame of reference matches no series, frames
            on no slice of the series (missing frames), two SEGs on one series. Nothing is
            written then.
    """
    opts = load_options(DicomSegOptions, folder=folder, **options)
    window = parse_window(opts.window)
    if not 0.0 < opts.fraction_threshold <= 1.0:
        raise ConversionError(f"fraction_threshold {opts.fraction_threshold}: expected a value in (0, 1]")
    found = scan_folder(folder)
    paths = list(dict.fromkeys([*found.segs, *(str(Path(p)) for p in opts.seg or [])]))
    if not paths:
        raise ConversionError(f"{folder}: no DICOM-SEG file found (and none given with --seg)")
    report = ConversionReport(source=str(folder))
    report.add("SEG files in", len(paths))
    report.add("image series in folder", len(found.series))
    plans, used, taken = [], {}, set()
    for path in paths:
        seg = read_seg(path)
        series, notes = match_series(path, "SEG", seg.frame_uids, seg.series_uids, found, str(folder),
                                     opts.ignore_frame_of_reference)
        if series.uid in used:
            raise ConversionError(f"SEGs {used[series.uid]} and {path} are both on series {series.uid}; convert "
                                  "them separately (--seg) to keep one set of images per series")
        used[series.uid] = path
        report.notes += notes
        placement = place_frames(seg, series, opts.fraction_threshold, opts.slice_tolerance)
        report.add("frames in", len(seg.frames))
        for key, n in placement.counts.items():
            report.add(key, n)
        if seg.kind == "FRACTIONAL":
            report.notes.append(f"{Path(path).name}: fractional segments thresholded at {opts.fraction_threshold}")
        plans.append((seg, series, placement, case_id_for(series, taken)))
    report.add("series without SEG (ignored)", len(found.series) - len(used))
    categories = _categories([seg for seg, *_ in plans], opts.supercategory)
    out_images = Path(opts.out_images)
    with StagedFolder(out_images) as staged:
        results = []
        for _, series, placement, case_id in plans:
            shapes = {k: sorted(by_segment.items()) for k, by_segment in placement.masks.items()}
            results.append(convert_series(series, case_id, shapes, staging=str(staged.root), window=window,
                                          root=folder, workers=opts.workers, keep_empty=opts.keep_empty_slices))
        info = {"description": f"DICOM series + SEG {Path(folder).name}",
                "image_root": image_root_hint(out_images, opts.out)}
        dataset = assemble_volumes(results, categories, report, info=info, image_root=out_images)
        staged.commit()
    dataset.write(opts.out, indent=opts.indent)
    report.output = str(opts.out)
    return dataset, report



__all__ = ["DicomSegOptions", "convert_dicom_seg"]
