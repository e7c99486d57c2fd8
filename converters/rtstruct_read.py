"""Read DICOM RTSTRUCT files and place their contours on an image series by patient coordinates.

The series is chosen by frame of reference (:func:`converters.series_slices.match_series`:
the RTSTRUCT's ReferencedFrameOfReferenceSequence and the ROIs'
ReferencedFrameOfReferenceUID). Each contour is placed on
the slice whose position along the normal it lies at (within ``slice_tolerance``),
whatever image its ContourImageSequence names; disagreements are counted. Contours that
lie on no slice, are not planar, or are not areas (POINT, OPEN_*) are reported, never
dropped silently.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.multival import MultiValue

from cococxr.errors import ConversionError, ImageReadError
from cococxr.volumes.contours import outside_image
from cococxr.volumes.dicom_series import DicomSeries

MAX_LISTED = 10


@dataclass(frozen=True)
class Contour:
    """One contour: its ROI, position in the ROI's ContourSequence, type, LPS points and image refs."""

    roi_number: int
    number: int
    geometric_type: str
    points: np.ndarray
    referenced_sops: tuple[str, ...]


@dataclass
class Roi:
    """A structure: ROI number, name, interpreted type and frame of reference."""

    number: int
    name: str
    interpreted_type: str | None
    frame_uid: str | None


@dataclass
class RtStruct:
    """The parts of an RTSTRUCT the converter uses."""

    path: str
    rois: list[Roi]
    contours: list[Contour]
    frame_uids: set[str]
    series_uids: set[str]


def _contour_data(contour: pydicom.Dataset) -> np.ndarray:
    """ContourData as float64, parsed straight from the DS text (pydicom's per-value objects cost seconds).

    Raises:
        ValueError: a value that is not a number.
    """
    element = contour.get_item("ContourData")
    value = None if element is None else element.value
    if value is None:
        return np.zeros(0)
    if isinstance(value, bytes):
        text = value.decode("ascii", errors="replace").strip(" \x00")
        return np.array(text.split("\\"), dtype=np.float64) if text else np.zeros(0)
    return np.asarray(list(value) if isinstance(value, (MultiValue, list, tuple)) else [value], dtype=np.float64)


def read_rtstruct(path: str | os.PathLike) -> RtStruct:
    """Parse an RTSTRUCT file.

    Raises:
        ImageReadError: unreadable file. ConversionError: not an RTSTRUCT, or a contour
            whose ContourData is not a list of x, y, z triples (names ROI and contour).
    """
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises many types on corrupt files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    if str(ds.get("Modality", "")) != "RTSTRUCT" or "StructureSetROISequence" not in ds:
        raise ConversionError(f"{path}: not an RTSTRUCT (Modality {ds.get('Modality')!r}, expected RTSTRUCT with a "
                              "StructureSetROISequence)")
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType") or "") or None
             for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o}
    rois = [Roi(int(r.ROINumber), str(r.get("ROIName") or f"ROI {r.ROINumber}").strip(), types.get(int(r.ROINumber)),
                str(r.get("ReferencedFrameOfReferenceUID") or "") or None) for r in ds.StructureSetROISequence]
    frames = {r.frame_uid for r in rois if r.frame_uid}
    series_uids = set()
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        if ref.get("FrameOfReferenceUID"):
            frames.add(str(ref.FrameOfReferenceUID))
        for study in ref.get("RTReferencedStudySequence", []):
            series_uids |= {str(s.SeriesInstanceUID) for s in study.get("RTReferencedSeriesSequence", [])
                            if s.get("SeriesInstanceUID")}
    contours = []
    for item in ds.get("ROIContourSequence", []):
        roi_number = int(item.ReferencedROINumber)
        for number, contour in enumerate(item.get("ContourSequence", []), start=1):
            try:
                data = _contour_data(contour)
            except ValueError as exc:
                raise ConversionError(f"{path}: ROI {roi_number} contour {number}: ContourData is not a list of "
                                      f"numbers ({exc})") from exc
            if len(data) % 3:
                raise ConversionError(f"{path}: ROI {roi_number} contour {number}: ContourData has {len(data)} "
                                      "values; expected x, y, z triples")
            refs = tuple(str(r.ReferencedSOPInstanceUID) for r in contour.get("ContourImageSequence", [])
                         if r.get("ReferencedSOPInstanceUID"))
            contours.append(Contour(roi_number, number, str(contour.get("ContourGeometricType") or "CLOSED_PLANAR"),
                                    data.reshape(-1, 3), refs))
    return RtStruct(str(path), rois, contours, frames, series_uids)


@dataclass
class Placement:
    """Where the contours went: ``shapes[k][roi_number]`` = polygons, plus counts and problems."""

    shapes: dict[int, dict[int, list]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    unplaced: list[str] = field(default_factory=list)


def place_contours(rt: RtStruct, series: DicomSeries, slice_tolerance: float | None = None) -> Placement:
    """Put each closed planar contour on the slice it lies on, as (columns, rows) pixel polygons.

    Args:
        slice_tolerance: largest distance (mm, along the normal) between a contour and
            its slice; default a quarter of the slice spacing.
    """
    step = float(np.linalg.norm(series.slice_step)) or 1.0
    tolerance = 0.25 * step if slice_tolerance is None else float(slice_tolerance)
    names = {r.number: r.name for r in rt.rois}
    uid_index = series.index_of_uid()
    placed = Placement()
    normal = series.normal
    for contour in rt.contours:
        label = f"ROI {contour.roi_number} {names.get(contour.roi_number, '?')!r} contour {contour.number}"
        placed.counts["contours in"] += 1
        if contour.roi_number not in names:
            placed.unplaced.append(f"{label}: its ROI number is not in StructureSetROISequence")
            continue
        if contour.geometric_type != "CLOSED_PLANAR":
            placed.unplaced.append(f"{label}: {contour.geometric_type} is not an area")
            continue
        if len(contour.points) < 3:
            placed.unplaced.append(f"{label}: {len(contour.points)} point(s); a closed contour needs 3")
            continue
        offsets = contour.points @ normal
        if float(offsets.max() - offsets.min()) > tolerance:
            span = float(offsets.max() - offsets.min())
            placed.unplaced.append(f"{label}: not parallel to the image planes (spans {span:.2f} mm along the "
                                   "slice normal)")
            continue
        k, distance = series.nearest_slice(float(offsets.mean()))
        if distance > tolerance:
            missing = [r for r in contour.referenced_sops if r not in uid_index]
            why = f"; it references image {missing[0]}, which is not in the series" if missing else ""
            placed.unplaced.append(f"{label} at {offsets.mean():.2f} mm lies {distance:.2f} mm from the nearest slice "
                                   f"(tolerance {tolerance:.2f} mm){why}")
            continue
        refs = contour.referenced_sops
        if refs and refs[0] not in uid_index:
            placed.counts["contours placed by position, referenced image not in the series"] += 1
        elif refs and uid_index[refs[0]] != k:
            placed.counts["contours placed by position, not on their referenced image"] += 1
        columns, rows = series.pixel_coordinates(contour.points, k)
        if outside_image(columns, rows, series.rows, series.columns):
            placed.counts["contours partly outside the image (clipped)"] += 1
        placed.shapes.setdefault(k, {}).setdefault(contour.roi_number, []).append((columns, rows))
        placed.counts["contours placed"] += 1
    placed.counts["contours not placed"] += len(placed.unplaced)
    return placed


__all__ = ["Contour", "Placement", "Roi", "RtStruct", "place_contours", "read_rtstruct"]
