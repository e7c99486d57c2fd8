"""DICOM series as volumes: find them in a folder, order their slices, locate patient points.

Slices are ordered by their position along the slice normal (ImageOrientationPatient's
row x column direction), never by file name or InstanceNumber. Points in patient
coordinates (LPS mm, as RTSTRUCT contours and SEG frames give them) are located on a
slice by that position and mapped to fractional (column, row) pixel coordinates, pixel
centres being whole numbers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from nibabel.orientations import io_orientation

from cococxr.errors import ConversionError, ImageReadError
from cococxr.io import is_dicom
from cococxr.paths import check_inside

from .layout import SliceLayout, dicom_affine

SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # binary/fractional, label map
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
ORIENTATION_TOLERANCE = 1e-4
_AXIS_OF_RAS = {2: "axial", 1: "coronal", 0: "sagittal"}


def read_header(path: str | os.PathLike) -> pydicom.Dataset:
    """A DICOM header without pixel data, or ImageReadError naming the file."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # pydicom raises many types on corrupt files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc


def _floats(ds: pydicom.Dataset, keyword: str, n: int, path) -> np.ndarray:
    value = ds.get(keyword)
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ConversionError(f"{path}: {keyword} is {value!r}; expected {n} numbers")
    return array


@dataclass(frozen=True)
class DicomSlice:
    """One image of a series: its file, SOP Instance UID and ImagePositionPatient (LPS mm)."""

    path: str
    sop_instance_uid: str
    position: tuple[float, float, float]


@dataclass(eq=False)
class DicomSeries:
    """A series of single-frame images sharing one plane orientation, ordered along the normal.

    Attributes:
        uid: SeriesInstanceUID.
        frame_of_reference_uid: FrameOfReferenceUID (None when the files lack it).
        rows, columns: pixel matrix.
        pixel_spacing: ``[between rows, between columns]`` mm.
        orientation: ImageOrientationPatient (row direction, column direction).
        slices: the images, ordered by position along the normal.
        tags: PatientID, StudyInstanceUID, Modality, SeriesNumber, SeriesDescription.
    """

    uid: str
    frame_of_reference_uid: str | None
    rows: int
    columns: int
    pixel_spacing: np.ndarray
    orientation: np.ndarray
    slices: list[DicomSlice]
    tags: dict = field(default_factory=dict)

    @property
    def row_direction(self) -> np.ndarray:
        """Unit vector of increasing column index (LPS)."""
        return self.orientation[:3]

    @property
    def column_direction(self) -> np.ndarray:
        """Unit vector of increasing row index (LPS)."""
        return self.orientation[3:]

    @property
    def normal(self) -> np.ndarray:
        """Slice normal, row direction x column direction."""
        return np.cross(self.row_direction, self.column_direction)

    @property
    def positions(self) -> np.ndarray:
        """``(n, 3)`` ImagePositionPatient of the ordered slices."""
        return np.array([s.position for s in self.slices], dtype=np.float64)

    @property
    def offsets(self) -> np.ndarray:
        """Position of each slice along the normal (mm)."""
        return self.positions @ self.normal

    @property
    def slice_step(self) -> np.ndarray:
        """Mean vector between consecutive slice positions (the slice thickness along the normal for one)."""
        if len(self.slices) > 1:
            return (self.positions[-1] - self.positions[0]) / (len(self.slices) - 1)
        return self.normal * float(self.tags.get("SliceThickness") or 1.0)

    @property
    def uniform(self) -> bool:
        """True when consecutive slices are equally spaced (within 1 % or 0.01 mm)."""
        if len(self.slices) < 3:
            return True
        steps = np.linalg.norm(np.diff(self.positions, axis=0), axis=1)
        return bool(np.abs(steps - steps.mean()).max() <= max(0.01, 0.01 * steps.mean()))

    @property
    def affine(self) -> np.ndarray:
        """RAS affine of ``src[column, row, slice]`` (see :func:`layout.dicom_affine`)."""
        return dicom_affine(self.slices[0].position, self.orientation, self.pixel_spacing, self.slice_step)

    def layout(self) -> SliceLayout:
        """The slice layout along the acquisition's own slice axis (so images are its slices)."""
        ornt = io_orientation(self.affine)
        axis = _AXIS_OF_RAS[int(ornt[2, 0])]
        return SliceLayout.from_affine((self.columns, self.rows, len(self.slices)), self.affine, axis,
                                       f"series {self.uid}")

    def index_of_uid(self) -> dict[str, int]:
        """SOP Instance UID -> slice index (slices without a UID left out)."""
        return {s.sop_instance_uid: k for k, s in enumerate(self.slices) if s.sop_instance_uid}

    def nearest_slice(self, offset: float) -> tuple[int, float]:
        """``(slice index, distance mm)`` of the slice nearest to ``offset`` along the normal."""
        distances = np.abs(self.offsets - offset)
        k = int(np.argmin(distances))
        return k, float(distances[k])

    def pixel_coordinates(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(columns, rows)`` fractional pixel coordinates of LPS ``points`` on slice ``k``."""
        relative = np.asarray(points, dtype=np.float64) - np.asarray(self.slices[k].position)
        return (relative @ self.row_direction / self.pixel_spacing[1],
                relative @ self.column_direction / self.pixel_spacing[0])

    def read_stored(self, k: int) -> tuple[np.ndarray, float, float]:
        """Stored pixel values of slice ``k`` and its RescaleSlope / RescaleIntercept.

        Raises:
            ImageReadError: unreadable pixels or a matrix other than ``rows x columns``.
        """
        path = self.slices[k].path
        try:
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
        except Exception as exc:  # pydicom / decoder plugins raise many types
            raise ImageReadError(f"{path}: cannot decode the pixel data ({exc})") from exc
        if pixels.shape != (self.rows, self.columns):
            raise ImageReadError(f"{path}: pixel data of shape {pixels.shape}; expected one grayscale "
                                 f"{self.rows}x{self.columns} frame like the rest of series {self.uid}")
        return pixels, float(ds.get("RescaleSlope") or 1.0), float(ds.get("RescaleIntercept") or 0.0)


@dataclass
class DicomFolder:
    """What a folder holds: image series, RTSTRUCT files, SEG files, other files."""

    series: dict[str, DicomSeries]
    rtstructs: list[str]
    segs: list[str]
    others: list[str]


def _series_from(uid: str, entries: list[tuple[str, pydicom.Dataset]]) -> DicomSeries:
    """Build and check one series from its headers."""
    first_path, first = entries[0]
    orientation = _floats(first, "ImageOrientationPatient", 6, first_path)
    spacing = _floats(first, "PixelSpacing", 2, first_path)
    rows, columns = int(first.Rows), int(first.Columns)
    slices, seen = [], {}
    for path, ds in entries:
        this = _floats(ds, "ImageOrientationPatient", 6, path)
        if np.abs(this - orientation).max() > ORIENTATION_TOLERANCE:
            raise ConversionError(f"series {uid}: {path} has ImageOrientationPatient {this.tolist()} but {first_path} "
                                  f"has {orientation.tolist()}; expected one plane orientation per series")
        if (int(ds.Rows), int(ds.Columns)) != (rows, columns) or \
                np.abs(_floats(ds, "PixelSpacing", 2, path) - spacing).max() > 1e-6:
            raise ConversionError(f"series {uid}: {path} has a {ds.Rows}x{ds.Columns} matrix with PixelSpacing "
                                  f"{list(ds.PixelSpacing)}; expected {rows}x{columns} and {spacing.tolist()} "
                                  f"as in {first_path}")
        # anonymised files may keep the UID only in the file meta
        sop = str(ds.get("SOPInstanceUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPInstanceUID", "")
                  or "")
        if sop and sop in seen:
            raise ConversionError(f"series {uid}: {path} and {seen[sop]} have the same SOPInstanceUID {sop}")
        seen[sop] = path
        slices.append(DicomSlice(path, sop, tuple(_floats(ds, "ImagePositionPatient", 3, path).tolist())))
    normal = np.cross(orientation[:3], orientation[3:])
    slices.sort(key=lambda s: (float(np.dot(s.position, normal)), s.path))
    offsets = np.array([np.dot(s.position, normal) for s in slices])
    if len(slices) > 1 and np.diff(offsets).min() < 1e-3:
        k = int(np.argmin(np.diff(offsets)))
        raise ConversionError(f"series {uid}: {slices[k].path} and {slices[k + 1].path} lie at the same position "
                              f"({offsets[k]:.3f} mm along the normal); expected one image per position")
    tags = {key: first.get(key) for key in ("PatientID", "StudyInstanceUID", "Modality", "SeriesNumber",
                                            "SeriesDescription", "SliceThickness") if first.get(key) not in (None, "")}
    tags = {k: (str(v) if k != "SliceThickness" else float(v)) for k, v in tags.items()}
    frame = str(first.get("FrameOfReferenceUID") or "") or None
    return DicomSeries(uid, frame, rows, columns, spacing, orientation, slices, tags)


def scan_folder(folder: str | os.PathLike) -> DicomFolder:
    """Read every DICOM header under ``folder`` (recursively) and group the files.

    Image series are files with ImagePositionPatient and a pixel matrix (grouped by
    SeriesInstanceUID); RTSTRUCT and SEG files are listed; everything else is counted.

    Raises:
        ConversionError: ``folder`` is not a folder, or a series is inconsistent.
        ImageReadError: a file with the DICOM marker cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder")
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    for path in files:
        check_inside(folder, path, "DICOM folder")
    groups: dict[str, list[tuple[str, pydicom.Dataset]]] = {}
    rtstructs, segs, others = [], [], []
    for path in files:
        if not is_dicom(path):
            others.append(str(path))
            continue
        ds = read_header(path)
        sop_class = str(ds.get("SOPClassUID", ""))
        modality = str(ds.get("Modality", ""))
        if sop_class == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
            rtstructs.append(str(path))
        elif sop_class in SEG_SOP_CLASSES or modality == "SEG":
            segs.append(str(path))
        elif "ImagePositionPatient" in ds and "Rows" in ds and "SeriesInstanceUID" in ds \
                and int(ds.get("NumberOfFrames") or 1) == 1:
            groups.setdefault(str(ds.SeriesInstanceUID), []).append((str(path), ds))
        else:
            others.append(str(path))
    series = {uid: _series_from(uid, entries) for uid, entries in sorted(groups.items())}
    return DicomFolder(series, rtstructs, segs, others)


__all__ = ["DicomFolder", "DicomSeries", "DicomSlice", "RTSTRUCT_SOP_CLASS", "SEG_SOP_CLASSES", "read_header",
           "scan_folder"]
