"""Tiny synthetic volumes for the always-on volume tests: NIfTI files, a CT series, RTSTRUCT and SEG.

Everything is generated in the test's tmp_path with the real libraries (nibabel,
pydicom, highdicom); nothing here is a mock.
"""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` with ``affine`` (sform and qform, code 1)."""
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def las_affine(spacing=(0.8, 0.9, 2.5), origin=(40.0, -30.0, -60.0)) -> np.ndarray:
    """A LAS affine (x flipped, like dcm2niix output) with anisotropic voxels."""
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = origin
    return affine


def synthetic_case(shape=(12, 10, 6), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 volume and a uint8 label volume with values 1, 2 and 5 (slice 0 and the last empty)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-1024, 1500, size=shape, dtype=np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[2:7, 3:8, 1:4] = 1
    labels[6:10, 1:4, 2:5] = 2
    labels[1:3, 6:9, 3] = 5
    return image, labels


def ct_series(folder: Path, n_slices: int = 4, rows: int = 16, columns: int = 20, *,
              spacing=(0.7, 0.6), thickness: float = 2.0, origin=(-5.0, -4.0, 10.0),
              orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), frame_uid: str | None = "auto",
              seed: int = 0) -> list[Path]:
    """Write a CT series (int16 stored values, rescale -1024) in reverse file order; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    frame = generate_uid() if frame_uid == "auto" else frame_uid
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    paths = []
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "PAT-1", "Test^Patient", "19700101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        if frame:
            ds.FrameOfReferenceUID = frame
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "1", "20240101", "120000", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, n_slices - k
        ds.Manufacturer = "synthetic"
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * thickness * normal]
        ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
        ds.SliceThickness = thickness
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = rng.integers(-1000, 3000, size=(rows, columns), dtype=np.int16).tobytes()
        path = folder / f"img{n_slices - k:03d}.dcm"  # file order is the reverse of the position order
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def patient_points(ds: Dataset, columns, rows) -> np.ndarray:
    """LPS points of fractional pixel coordinates on the slice of ``ds``."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    dr, dc = float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])
    columns, rows = np.asarray(columns, float), np.asarray(rows, float)
    return ipp + columns[:, None] * dc * iop[:3] + rows[:, None] * dr * iop[3:]


def rtstruct(path: Path, images: list[Dataset], rois: dict[str, list[tuple[int, list[tuple[float, float]]]]],
             *, frame_uid: str | None = None, extra_contours: dict[str, list[np.ndarray]] | None = None) -> Path:
    """Write an RTSTRUCT on ``images`` (ordered by position).

    Args:
        rois: ROI name -> ``[(slice index, [(column, row), ...]), ...]`` polygons in pixel coordinates.
        frame_uid: the frame of reference to write (default: the images').
        extra_contours: ROI name -> raw LPS point arrays added as further contours.
    """
    first = images[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.StudyInstanceUID = "RTSTRUCT", first.PatientID, first.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    frame = frame_uid or first.get("FrameOfReferenceUID") or generate_uid()
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = frame
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = [_image_ref(im) for im in images]
    study.RTReferencedSeriesSequence = [series]
    ref_frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [ref_frame]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, (name, polygons) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame
        ds.StructureSetROISequence.append(roi)
        contours = []
        for k, polygon in polygons:
            cols, rws = zip(*polygon)
            contours.append(_contour(patient_points(images[k], cols, rws), images[k]))
        for points in (extra_contours or {}).get(name, []):
            contours.append(_contour(points, None))
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = contours
        ds.ROIContourSequence.append(item)
        observation = Dataset()
        observation.ObservationNumber, observation.ReferencedROINumber = number, number
        observation.RTROIInterpretedType = "ORGAN"
        ds.RTROIObservationsSequence.append(observation)
    ds.save_as(path, enforce_file_format=True)
    return path


def _image_ref(image: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    return ref


def _contour(points: np.ndarray, image: Dataset | None) -> Dataset:
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(points)
    contour.ContourData = [round(float(v), 6) for v in np.asarray(points).ravel()]
    if image is not None:
        contour.ContourImageSequence = [_image_ref(image)]
    return contour


def read_series(paths: list[Path]) -> list[Dataset]:
    """The datasets of ``paths`` ordered by position along the normal."""
    images = [pydicom.dcmread(p) for p in paths]
    iop = np.asarray(images[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(images, key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))


def seg(path: Path, images: list[Dataset], masks: np.ndarray, names: list[str], *, fractional: bool = False) -> Path:
    """Write a SEG with highdicom: ``masks`` is ``(slices, rows, columns, segments)`` (bool, or 0..1 floats)."""
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Organ, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names, start=1)]
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    segmentation = hd.seg.Segmentation(
        source_images=images, pixel_array=masks.astype(np.float32) if fractional else masks, segmentation_type=kind,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=5,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="synthetic",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1", max_fractional_value=255)
    segmentation.save_as(path)
    return path
