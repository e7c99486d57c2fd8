"""DICOM series slices -> slice PNGs + annotations, shared by ``convert rtstruct`` and ``convert dicom-seg``.

Each slice of a series becomes one image in the canonical orientation of its own
acquisition axis (:meth:`DicomSeries.layout`): for a standard axial CT that is the
DICOM pixel matrix as stored. 16-bit PNGs hold the stored pixel values (shifted by
32768 when signed), with the slice's own RescaleSlope / RescaleIntercept recorded
(adjusted for the shift), so Hounsfield units are exact; ``window`` gives 8-bit PNGs.

Structures come per slice as ``(label value, shape)`` where a shape is a list of
``(columns, rows)`` polygons (rasterised in the worker, XOR) or a :class:`PackedMask`
in the DICOM pixel layout ``(rows, columns)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cococxr.errors import ConversionError, ImageReadError
from cococxr.volumes.contours import fill_polygons
from cococxr.volumes.dicom_series import DicomFolder, DicomSeries
from cococxr.volumes.intensity import Rescale, apply_window, window_record
from cococxr.volumes.layout import SliceLayout

from .common import parallel_map
from .volume_records import CaseResult, SliceResult, mask_geometry, safe_case_id, slice_file_name, write_slice_png


@dataclass(frozen=True)
class SliceJob:
    """One slice to write: where it is and the structures on it (``(value, shape)`` pairs)."""

    case_id: str
    index: int  # display slice index
    k: int      # index in the series' slice order
    path: str
    sop_instance_uid: str
    position: tuple[float, float, float]
    shapes: tuple = ()


@dataclass(frozen=True)
class CaseSettings:
    """What a worker needs for the slices of one case (picklable)."""

    staging: str
    window: tuple[float, float] | None
    layout: SliceLayout
    rows: int
    columns: int
    base: dict = field(default_factory=dict)
    root: str = ""


def match_series(path: str, kind: str, frame_uids: set[str], series_uids: set[str], folder: DicomFolder,
                 where: str, ignore_frame_of_reference: bool = False) -> tuple[DicomSeries, list[str]]:
    """The image series an RTSTRUCT / SEG at ``path`` belongs to, and notes on how it was chosen.

    Series whose FrameOfReferenceUID is one of ``frame_uids`` qualify; among several, the
    referenced ones (``series_uids``) win. A referenced series whose frame of reference is
    missing (or differs, with ``ignore_frame_of_reference``) is used with a note.

    Raises:
        ConversionError: no series qualifies (the message lists what the folder has), or
            several do and the references do not single one out.
    """
    notes = []
    candidates = [s for s in folder.series.values() if s.frame_of_reference_uid in frame_uids]
    if len(candidates) > 1:
        candidates = [s for s in candidates if s.uid in series_uids] or candidates
    if not candidates:
        by_uid = [s for s in folder.series.values() if s.uid in series_uids]
        if by_uid and (ignore_frame_of_reference or by_uid[0].frame_of_reference_uid is None):
            why = ("--ignore-frame-of-reference" if by_uid[0].frame_of_reference_uid
                   else "the series has no FrameOfReferenceUID")
            notes.append(f"{path}: placed on series {by_uid[0].uid}, which it references by SeriesInstanceUID "
                         f"({why}); its frame of reference {sorted(frame_uids)} was not checked")
            return by_uid[0], notes
        have = "; ".join(f"{s.uid} (frame of reference {s.frame_of_reference_uid}, {len(s.slices)} images)"
                         for s in folder.series.values()) or "none"
        hint = (f" It references series {sorted(series_uids)}, which is in the folder with another frame of "
                "reference: pass --ignore-frame-of-reference only if you know they share patient coordinates."
                if by_uid else "")
        raise ConversionError(f"{kind} {path}: its frame of reference {sorted(frame_uids) or '(none)'} matches no "
                              f"image series in {where} (series there: {have}); expected the CT/MR series it "
                              f"was made on.{hint}")
    if len(candidates) > 1:
        raise ConversionError(f"{kind} {path}: series {[s.uid for s in candidates]} all share its frame of "
                              "reference and it references none of them; give the series folder alone")
    return candidates[0], notes


def case_id_for(series: DicomSeries, taken: set[str]) -> str:
    """``PatientID`` (file-name safe), or with the series UID's tail when another case has it."""
    base = safe_case_id(series.tags.get("PatientID") or series.uid)
    case_id = base if base not in taken else f"{base}_{safe_case_id(series.uid[-12:])}"
    taken.add(case_id)
    return case_id


def base_record(series: DicomSeries, case_id: str, root: str | os.PathLike) -> dict:
    """Record keys shared by every slice of a series."""
    first = Path(series.slices[0].path)
    try:
        volume = first.parent.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        volume = first.parent.name
    record = {"case_id": case_id, "volume": volume or ".", "series_uid": series.uid}
    if series.frame_of_reference_uid:
        record["frame_of_reference_uid"] = series.frame_of_reference_uid
    if series.tags.get("PatientID"):
        record["patient_id"] = series.tags["PatientID"]
    if series.tags.get("Modality"):
        record["modality"] = series.tags["Modality"]
    record.update(series.layout().record())
    return record


def _pixels(job: SliceJob, settings: CaseSettings, series_read) -> tuple[np.ndarray, dict]:
    stored, slope, intercept = series_read
    if not np.issubdtype(stored.dtype, np.integer):
        raise ImageReadError(f"{job.path}: pixel data of type {stored.dtype}; expected integer CT/MR pixels")
    if settings.window is not None:
        return apply_window(stored.astype(np.float64) * slope + intercept, settings.window), \
            window_record(settings.window)
    signed = bool(np.issubdtype(stored.dtype, np.signedinteger))
    pixels = (stored.astype(np.int32) + 32768).astype(np.uint16) if signed else stored.astype(np.uint16)
    return pixels, Rescale.of_dicom(slope, intercept, signed).record()


@dataclass(frozen=True)
class PackedMask:
    """A 2-D 0/1 mask kept bit-packed (8x smaller) until its slice is written."""

    bits: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def pack(cls, mask: np.ndarray) -> "PackedMask":
        """Pack a 2-D mask (non-zero = inside)."""
        return cls(np.packbits(np.asarray(mask) != 0), tuple(int(s) for s in mask.shape))

    def unpack(self) -> np.ndarray:
        """The uint8 0/1 mask."""
        return np.unpackbits(self.bits, count=self.shape[0] * self.shape[1]).reshape(self.shape)

    def __or__(self, other: "PackedMask") -> "PackedMask":
        return PackedMask(self.bits | other.bits, self.shape)


def _mask(shape, rows: int, columns: int) -> np.ndarray:
    """A structure's mask in the DICOM pixel layout: a PackedMask, or polygons to rasterise."""
    if isinstance(shape, PackedMask):
        return shape.unpack()
    return fill_polygons(shape, rows, columns)


def convert_slice(job: SliceJob, settings: CaseSettings, series: DicomSeries) -> SliceResult:
    """Write one slice's PNG under the staging folder and encode its structures."""
    layout = settings.layout
    pixels, intensity = _pixels(job, settings, series.read_stored(job.k))
    image = np.ascontiguousarray(layout.plane_to_display(pixels.T))
    name = slice_file_name(job.case_id, layout.axis, job.index, layout.num_slices)
    write_slice_png(settings.staging, name, image)
    annotations = []
    for value, shape in job.shapes:
        mask = layout.plane_to_display(_mask(shape, settings.rows, settings.columns).T)
        if mask.any():
            annotations.append((int(value), mask_geometry(mask)))
    try:
        source = Path(job.path).resolve().relative_to(Path(settings.root).resolve()).as_posix()
    except ValueError:
        source = Path(job.path).name
    record = {**settings.base, "slice_index": job.index, "sop_instance_uid": job.sop_instance_uid,
              "image_position": list(job.position), "source": source, **intensity}
    height, width = image.shape
    return SliceResult(name, height, width, record, annotations)


def _run_job(job_settings: tuple[SliceJob, CaseSettings, DicomSeries]) -> SliceResult:
    return convert_slice(*job_settings)


def convert_series(series: DicomSeries, case_id: str, shapes_by_k: dict[int, list], *, staging: str,
                   window: tuple[float, float] | None, root: str | os.PathLike, workers: int = 1,
                   keep_empty: bool = True) -> CaseResult:
    """Write every slice of ``series`` (or only the annotated ones) and return the case.

    Args:
        shapes_by_k: series slice index -> ``[(value, shape), ...]``.
        keep_empty: keep slices without structures as images without annotations.
    """
    layout = series.layout()
    base = base_record(series, case_id, root)
    if not keep_empty:
        base["empty_slices_omitted"] = True
    settings = CaseSettings(staging, window, layout, series.rows, series.columns, base, str(root))
    jobs = []
    for index in range(layout.num_slices):
        k = layout.source_index(index)
        shapes = tuple(shapes_by_k.get(k, ()))
        if not shapes and not keep_empty:
            continue
        item = series.slices[k]
        jobs.append((SliceJob(case_id, index, k, item.path, item.sop_instance_uid, item.position, shapes),
                     settings, series))
    result = CaseResult(case_id)
    result.slices = parallel_map(_run_job, jobs, workers=workers, desc="slices", chunksize=4)
    if not keep_empty:
        result.counts["slices without structures left out"] += layout.num_slices - len(jobs)
    if not series.uniform:
        result.notes.append(f"series {series.uid}: slices are not equally spaced; the recorded affine uses the "
                            "mean step, image_position keeps each slice's own position")
    return result


__all__ = ["CaseSettings", "PackedMask", "SliceJob", "base_record", "case_id_for", "convert_series", "convert_slice",
           "match_series"]
