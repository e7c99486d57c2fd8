"""CT/MR series + RTSTRUCT -> slice PNGs + COCO (``cococxr convert rtstruct``).

The folder is searched recursively for image series and RTSTRUCT files (more RTSTRUCTs
can be named with ``--rtstruct``); each RTSTRUCT is matched to its series by frame of
reference and its contours are placed by patient coordinates (see
:mod:`converters.rtstruct_read`) and rasterised by the pixel-centre rule
(:mod:`cococxr.volumes.contours`). Every slice of a matched series becomes an image
(see :mod:`converters.series_slices`); ROI names become categories (``label_value``
1..K in order of appearance, ``roi_number`` kept). One annotation per ROI per slice.
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
from .rtstruct_read import MAX_LISTED, place_contours, read_rtstruct
from .series_slices import case_id_for, convert_series, match_series
from .volume_records import Category, assemble_volumes, out_images_option, out_json_option, series_folder_option


@dataclass
class RtstructOptions:
    """Options of :func:`convert_rtstruct` and ``cococxr convert rtstruct``."""

    folder: PathArg = series_folder_option("RTSTRUCT")
    out: PathArg | None = out_json_option()
    out_images: PathArg | None = out_images_option()
    rtstruct: list[PathArg] | None = option(None, "RTSTRUCT file(s) outside the folder (default: those found in it)",
                                            role="input")
    window: str | None = option(None, "8-bit PNGs through a CT window: lung, mediastinum, abdomen, bone, brain or "
                                "W,L (default: 16-bit PNGs of the stored values, rescale recorded)")
    keep_empty_slices: bool = option(True, "keep slices without contours as images without annotations")
    slice_tolerance: float | None = option(None, "largest distance (mm) from a contour to its slice (default: a "
                                           "quarter of the slice spacing)")
    strict: bool = option(False, "fail when a contour cannot be placed (default: report it)")
    ignore_frame_of_reference: bool = option(False, "accept a series referenced by UID whose frame of reference "
                                             "differs from the RTSTRUCT's")
    supercategory: str = option("anatomy", "supercategory of the ROI categories")
    workers: int = option(1, "parallel worker processes (output is identical for any value; default: 1)")
    indent: int | None = option(None, "indent the JSON (default: compact)")


def _roi_names(rt, notes: list[str]) -> dict[int, str]:
    """ROI number -> unique name (a repeated name gets its ROI number appended)."""
    names, seen = {}, set()
    for roi in rt.rois:
        name = roi.name
        if name in seen:
            name = f"{roi.name} (ROI {roi.number})"
            notes.append(f"{rt.path}: ROI name {roi.name!r} is used twice; ROI {roi.number} is called {name!r}")
        seen.add(name)
        names[roi.number] = name
    return names


def convert_rtstruct(folder: PathArg, **options):
    """Convert image series and their RTSTRUCTs into slice PNGs and one COCO dataset.

    Args:
        folder: searched recursively for image series and RTSTRUCT files.
        **options: the other fields of :class:`RtstructOptions` (``out`` and ``out_images`` are
            required).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ConversionError: no RTSTRUCT, an RTSTRUCT whose frame of reference matches no
            series, two RTSTRUCTs on one series, contours that cannot be placed with
            ``strict``. Nothing is written then.
    """
    opts = load_options(RtstructOptions, folder=folder, **options)
    window = parse_window(opts.window)
    found = scan_folder(folder)
    paths = list(dict.fromkeys([*found.rtstructs, *(str(Path(p)) for p in opts.rtstruct or [])]))
    if not paths:
        raise ConversionError(f"{folder}: no RTSTRUCT file found (and none given with --rtstruct)")
    report = ConversionReport(source=str(folder))
    report.add("RTSTRUCT files in", len(paths))
    report.add("image series in folder", len(found.series))
    plans, used, taken, values = [], {}, set(), {}
    for path in paths:
        rt = read_rtstruct(path)
        series, notes = match_series(path, "RTSTRUCT", rt.frame_uids, rt.series_uids, found, str(folder),
                                     opts.ignore_frame_of_reference)
        if series.uid in used:
            raise ConversionError(f"RTSTRUCTs {used[series.uid]} and {path} are both on series {series.uid}; "
                                  "convert them separately (--rtstruct) to keep one set of images per series")
        used[series.uid] = path
        report.notes += notes
        names = _roi_names(rt, report.notes)
        for name in names.values():
            values.setdefault(name, len(values) + 1)
        placement = place_contours(rt, series, opts.slice_tolerance)
        if placement.unplaced and opts.strict:
            raise ConversionError(f"RTSTRUCT {path}: {len(placement.unplaced)} contour(s) cannot be placed on series "
                                  f"{series.uid}:\n  " + "\n  ".join(placement.unplaced[:20]))
        report.notes += [f"{Path(path).name}: {problem}" for problem in placement.unplaced[:MAX_LISTED]]
        if len(placement.unplaced) > MAX_LISTED:
            report.notes.append(f"... and {len(placement.unplaced) - MAX_LISTED} more contours not placed")
        for key, n in placement.counts.items():
            report.add(key, n)
        plans.append((rt, series, names, placement, case_id_for(series, taken)))
    report.add("series without RTSTRUCT (ignored)", len(found.series) - len(used))
    categories = []
    for rt, _, names, _, _ in plans:
        for roi in rt.rois:
            if all(c.name != names[roi.number] for c in categories):
                extra = (("roi_number", roi.number),) + ((("roi_type", roi.interpreted_type),)
                                                         if roi.interpreted_type else ())
                categories.append(Category(values[names[roi.number]], names[roi.number], opts.supercategory, extra))
    out_images = Path(opts.out_images)
    with StagedFolder(out_images) as staged:
        results = []
        for rt, series, names, placement, case_id in plans:
            shapes = {k: [(values[names[roi]], polygons) for roi, polygons in sorted(by_roi.items(),
                                                                                    key=lambda i: values[names[i[0]]])]
                      for k, by_roi in placement.shapes.items()}
            results.append(convert_series(series, case_id, shapes, staging=str(staged.root), window=window,
                                          root=folder, workers=opts.workers, keep_empty=opts.keep_empty_slices))
        info = {"description": f"DICOM series + RTSTRUCT {Path(folder).name}",
                "image_root": image_root_hint(out_images, opts.out)}
        dataset = assemble_volumes(results, categories, report, info=info, image_root=out_images)
        staged.commit()
    dataset.write(opts.out, indent=opts.indent)
    report.output = str(opts.out)
    return dataset, report



__all__ = ["RtstructOptions", "convert_rtstruct"]
