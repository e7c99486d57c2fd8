"""Read DICOM-SEG objects (highdicom) and place their frames on an image series by position.

BINARY, FRACTIONAL (thresholded) and LABELMAP segmentations are read. Each frame is
placed on the slice at its ImagePositionPatient (same plane orientation, pixel spacing
and matrix required), not on the image its derivation references name; a frame that
lies on no slice of the series is an error naming the frame, its segment and position.
Overlapping segments stay separate: each segment gives its own annotation.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
from highdicom.seg import SegmentationTypeValues

from cococxr.errors import ConversionError, ImageReadError
from cococxr.volumes.dicom_series import DicomSeries

from .series_slices import PackedMask

MAX_LISTED = 10
IN_PLANE_TOLERANCE = 0.05  # pixels


@dataclass(frozen=True)
class Segment:
    """A segment: number, label and its coded properties (``[value, scheme, meaning]``)."""

    number: int
    label: str
    category: tuple[str, str, str] | None
    type: tuple[str, str, str] | None
    algorithm_type: str | None


@dataclass
class SegFile:
    """The parts of a SEG the converter uses; ``frames[i]`` = (segment numbers, LPS position, source UIDs)."""

    path: str
    kind: str
    segments: list[Segment]
    frame_uids: set[str]
    series_uids: set[str]
    orientation: np.ndarray
    pixel_spacing: np.ndarray
    rows: int
    columns: int
    frames: list[tuple[tuple[int, ...], np.ndarray, tuple[str, ...]]]
    pixels: np.ndarray
    max_fraction: float = 1.0
    padding: int | None = None


def _code(sequence) -> tuple[str, str, str] | None:
    if not sequence:
        return None
    item = sequence[0]
    return tuple(str(item.get(key, "")) for key in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"))


def _frame_value(seg, index: int, group: str, keyword: str):
    """A functional-group attribute of frame ``index`` (per-frame first, then shared), or None."""
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    shared = seg.get("SharedFunctionalGroupsSequence") or []
    for item in ([per_frame[index]] if index < len(per_frame) else []) + list(shared[:1]):
        sequence = item.get(group)
        if sequence and keyword in sequence[0]:
            return sequence[0].get(keyword)
    return None


def _sources(seg, index: int) -> tuple[str, ...]:
    groups = seg.get("PerFrameFunctionalGroupsSequence") or []
    if len(groups) <= index:
        return ()
    return tuple(str(s.ReferencedSOPInstanceUID) for d in groups[index].get("DerivationImageSequence", [])
                 for s in d.get("SourceImageSequence", []) if s.get("ReferencedSOPInstanceUID"))


def read_seg(path: str | os.PathLike) -> SegFile:
    """Parse a SEG file with highdicom.

    Raises:
        ImageReadError: unreadable or not a SEG. ConversionError: frames without a
            position, or plane orientations that differ between frames.
    """
    try:
        seg = hd.seg.segread(path)
        pixels = np.asarray(seg.pixel_array)
    except Exception as exc:  # highdicom / pydicom raise many types on bad files
        raise ImageReadError(f"{path}: not a readable DICOM-SEG ({exc})") from exc
    kind = SegmentationTypeValues(seg.segmentation_type).value
    n_frames = int(seg.get("NumberOfFrames") or 1)
    pixels = pixels.reshape(n_frames, int(seg.Rows), int(seg.Columns))
    segments = []
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        if number == 0 and kind == "LABELMAP":
            continue  # the label map's background
        segments.append(Segment(number, str(item.get("SegmentLabel") or f"segment {number}").strip(),
                                _code(item.get("SegmentedPropertyCategoryCodeSequence")),
                                _code(item.get("SegmentedPropertyTypeCodeSequence")),
                                str(item.get("SegmentAlgorithmType") or "") or None))
    orientation = _frame_value(seg, 0, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = _frame_value(seg, 0, "PixelMeasuresSequence", "PixelSpacing")
    if orientation is None or spacing is None:
        raise ConversionError(f"SEG {path}: no ImageOrientationPatient / PixelSpacing in its functional groups; "
                              "frames cannot be placed by patient coordinates")
    orientation = np.asarray([float(v) for v in orientation])
    frames = []
    for i in range(n_frames):
        position = _frame_value(seg, i, "PlanePositionSequence", "ImagePositionPatient")
        if position is None:
            raise ConversionError(f"SEG {path}: frame {i + 1} has no ImagePositionPatient")
        this = _frame_value(seg, i, "PlaneOrientationSequence", "ImageOrientationPatient")
        if this is not None and np.abs(np.asarray([float(v) for v in this]) - orientation).max() > 1e-4:
            raise ConversionError(f"SEG {path}: frame {i + 1} has another plane orientation than frame 1; "
                                  "expected one orientation")
        if kind == "LABELMAP":
            numbers = tuple(s.number for s in segments)
        else:
            number = _frame_value(seg, i, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
            if number is None:
                raise ConversionError(f"SEG {path}: frame {i + 1} names no segment (SegmentIdentificationSequence)")
            numbers = (int(number),)
        frames.append((numbers, np.asarray([float(v) for v in position]), _sources(seg, i)))
    series_uids = {str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])
                   if s.get("SeriesInstanceUID")}
    frame_uid = str(seg.get("FrameOfReferenceUID") or "")
    max_fraction = float(seg.get("MaximumFractionalValue") or 1) if kind == "FRACTIONAL" else 1.0
    padding = int(seg.PixelPaddingValue) if kind == "LABELMAP" and "PixelPaddingValue" in seg else None
    return SegFile(str(path), kind, segments, {frame_uid} if frame_uid else set(), series_uids, orientation,
                   np.asarray([float(v) for v in spacing]), int(seg.Rows), int(seg.Columns), frames, pixels,
                   max_fraction, padding)


@dataclass
class FramePlacement:
    """``masks[k][segment]`` = PackedMask on slice k, plus counts for the report."""

    masks: dict[int, dict[int, PackedMask]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def _check_grid(seg: SegFile, series: DicomSeries) -> None:
    if np.abs(seg.orientation - series.orientation).max() > 1e-4:
        raise ConversionError(f"SEG {seg.path}: plane orientation {seg.orientation.tolist()} differs from series "
                              f"{series.uid}'s {series.orientation.tolist()}; expected frames on the series' planes")
    if (seg.rows, seg.columns) != (series.rows, series.columns) or \
            np.abs(seg.pixel_spacing - series.pixel_spacing).max() > 1e-4:
        raise ConversionError(f"SEG {seg.path}: {seg.rows}x{seg.columns} frames with PixelSpacing "
                              f"{seg.pixel_spacing.tolist()}; expected the series' {series.rows}x{series.columns} "
                              f"and {series.pixel_spacing.tolist()} (resampled segmentations are not supported)")


def _binary_frames(seg: SegFile, i: int, threshold: float) -> list[tuple[int, np.ndarray]]:
    """``(segment number, 0/1 mask)`` of frame ``i``."""
    frame = seg.pixels[i]
    if seg.kind == "FRACTIONAL":
        return [(seg.frames[i][0][0], (frame.astype(np.float64) / seg.max_fraction) >= threshold)]
    if seg.kind == "LABELMAP":
        present = set(np.unique(frame).tolist()) - {0}
        known = {s.number for s in seg.segments}
        strange = sorted(present - known - ({seg.padding} if seg.padding is not None else set()))
        if strange:
            raise ConversionError(f"SEG {seg.path}: frame {i + 1} has label value(s) {strange[:MAX_LISTED]} that "
                                  f"are no segment (segments: {sorted(known)})")
        return [(n, frame == n) for n in sorted(present & known)]
    return [(seg.frames[i][0][0], frame != 0)]


def place_frames(seg: SegFile, series: DicomSeries, threshold: float = 0.5,
                 slice_tolerance: float | None = None) -> FramePlacement:
    """Put each frame on the slice at its position.

    Raises:
        ConversionError: another plane grid, or frames that lie on no slice of the series
            (all of them listed, with the image each references and whether it is there).
    """
    _check_grid(seg, series)
    step = float(np.linalg.norm(series.slice_step)) or 1.0
    tolerance = 0.25 * step if slice_tolerance is None else float(slice_tolerance)
    uid_index = series.index_of_uid()
    known = {s.number for s in seg.segments}
    placed, problems = FramePlacement(), []
    for i, (numbers, position, sources) in enumerate(seg.frames):
        k, distance = series.nearest_slice(float(position @ series.normal))
        columns, rows = series.pixel_coordinates(position[None, :], k)
        if distance > tolerance or max(abs(float(columns[0])), abs(float(rows[0]))) > IN_PLANE_TOLERANCE:
            ref = sources[0] if sources else None
            where = ("references image " + ref + (" (in the series)" if ref in uid_index else " (not in the series)")
                     if ref else "references no image")
            problems.append(f"frame {i + 1} (segment {numbers[0] if len(numbers) == 1 else numbers}) at "
                            f"{np.round(position, 3).tolist()} lies on no slice of series {series.uid} (nearest "
                            f"{distance:.3f} mm away along the normal); it {where}")
            continue
        unknown = [n for n in numbers if n not in known]
        if unknown:
            raise ConversionError(f"SEG {seg.path}: frame {i + 1} refers to segment {unknown[0]}, which "
                                  f"SegmentSequence does not describe (segments {sorted(known)})")
        if sources and sources[0] in uid_index and uid_index[sources[0]] != k:
            placed.counts["frames placed by position, not on their referenced image"] += 1
        for number, mask in _binary_frames(seg, i, threshold):
            if not mask.any():
                continue
            packed = PackedMask.pack(mask)
            slot = placed.masks.setdefault(k, {})
            slot[number] = slot[number] | packed if number in slot else packed
        placed.counts["frames placed"] += 1
    if problems:
        raise ConversionError(f"SEG {seg.path}: {len(problems)} of {len(seg.frames)} frame(s) reference missing "
                              "frames of the series:\n  " + "\n  ".join(problems[:20]) +
                              ("\n  ..." if len(problems) > 20 else "") +
                              "\nexpected every frame on a slice of the series it was made on")
    return placed


__all__ = ["FramePlacement", "SegFile", "Segment", "place_frames", "read_seg"]
