"""Helpers the tests share: where the data is, tiny COCO files, hypothesis strategies, synthetic volumes.

* Paths: :data:`REPO`, :data:`SHARED_DATA` (``../shared/data``, or ``$COCOCXR_SHARED_DATA``),
  :data:`SAMPLE` (the sample inside the package) and :func:`shared`, which skips a test
  when a real dataset is absent.
* :func:`tiny_coco`: train/val files of the embedded sample for the pipeline tests.
* :func:`build_tiny_models`, :func:`sample_coco`: the app's untrained models and COCO file.
* Hypothesis strategies for the RLE and mask tests (:func:`masks`, :func:`canonical_rles`,
  :func:`run_counts`) and pycocotools references (:func:`pycoco_encode`, ...).
* Tiny synthetic volumes made with the real libraries (nibabel, pydicom, highdicom):
  :func:`save_nifti`, :func:`ct_series`, :func:`rtstruct`, :func:`seg`, ...
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.config import save_config
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.io import read_mask
from cococxr.masks import mask_to_annotations
from cococxr.pipelines.engine.cards import ClassifierSidecar, write_sidecar
from cococxr.pipelines.segmentation.config import SegmentationConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COCOCXR_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "cococxr" / "sample"


def shared(name: str) -> Path:
    """Path of a dataset under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} not present (../shared/data is not beside this checkout)")
    return path


# Tiny COCO files --------------------------------------------------------------------------------

def tiny_coco(folder: Path, n_train: int = 4, n_val: int = 3) -> tuple[Path, Path]:
    """Convert the sample (lung masks, patient ids) and split it by patient into tiny files.

    Returns:
        ``(train.json, val.json)`` in ``folder``; no patient is in both.
    """
    # the images inside the files' folder: a COCO file's own image root must stay inside it
    images = folder / "images"
    if not images.exists():
        shutil.copytree(SAMPLE / "images", images)
    dataset, _ = convert_mask_folders(images, SAMPLE / "masks", folder / "all.json",
                                      class_name="lung", metadata=SAMPLE / "metadata.csv",
                                      keep="patientid:patient_id,view", allow_missing_masks=True)
    parts = dataset.split({"train": 0.7, "val": 0.3}, group_key="patient_id", seed=0)
    paths = []
    for name, n in (("train", n_train), ("val", n_val)):
        part = parts[name]
        ids = [i for i in part.imgs if part.img_to_anns[i]][:n]
        path = folder / f"{name}.json"
        part.subset(ids).write(path)
        paths.append(path)
    return paths[0], paths[1]


def labelled_coco(train: Path) -> CocoDataset:
    """The COCO file ``train`` with an image-level label on every image: COVID-19 on every third, else No Finding."""
    coco = CocoDataset(train)
    dataset = dict(coco.dataset, categories=[*coco.dataset["categories"],
                                             {"id": 90, "name": "COVID-19", "supercategory": "finding"},
                                             {"id": 91, "name": "No Finding", "supercategory": "finding"}])
    dataset["annotations"] = [*dataset["annotations"], *({"id": 1000 + k, "image_id": image_id,
                                                          "category_id": 90 if k % 3 == 0 else 91}
                                                         for k, image_id in enumerate(coco.imgs))]
    return CocoDataset(dataset, coco.image_root)


# The app's tiny models and COCO file ----------------------------------------------------------

APP_IMAGE = "00870a9c.png"  # a sample image the app tests upload


def build_tiny_models(folder: Path) -> tuple[Path, Path]:
    """A tiny plain U-Net (with its run config) and a tiny CNN (with its sidecar), saved as training does.

    Untrained: building and saving takes seconds, and the app does not care what they learned.
    """
    # TensorFlow only for the tests that build models
    from cococxr.models.classifiers import build_cnn
    from cococxr.models.io import save_model
    from cococxr.models.segmentation import build_plain_unet

    seg = save_model(build_plain_unet((32, 32, 1), 1, filters=(4, 8)), folder / "seg" / "model.h5")
    save_config(SegmentationConfig(train="train.json", val="val.json", classes=["lung"], arch="plain_unet",
                                   input_size=32), seg.parent / "config.json")
    cls = save_model(build_cnn(2, (32, 32, 1), n_blocks=2, base_filters=4, dense_units=8), folder / "cls" / "model.h5")
    write_sidecar(cls, ClassifierSidecar(
        class_names=["COVID-19", "No Finding"], class_spec="COVID-19;No Finding",
        groups={"COVID-19": ["COVID-19"], "No Finding": ["No Finding"]}, input_size=32,
        mask_with=str(seg.resolve()), positive_class="COVID-19", threshold=0.42))
    return seg, cls


def sample_coco(folder: Path) -> Path:
    """A two-image COCO file of the embedded sample: lung masks and image-level labels."""
    builder = CocoBuilder()
    lung, covid = builder.add_category("lung", "anatomy"), builder.add_category("COVID-19", "finding")
    for name in (APP_IMAGE, "02b76460.png"):
        mask = read_mask(SAMPLE / "masks" / name)
        image_id = builder.add_image(name, *mask.shape[:2])
        for ann in mask_to_annotations(mask, lung, image_id):
            builder.add_annotation(image_id, lung, ann["segmentation"])
        builder.add_label(image_id, covid)
    path = folder / "sample.json"
    images = folder / "images"  # a file's own image root must stay inside its folder
    shutil.copytree(SAMPLE / "images", images, dirs_exist_ok=True)
    builder.build(images).write(path)
    return path


# Hypothesis strategies (RLE, masks) ----------------------------------------------------------

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shapes(side: int = 40, line: int = 60):
    """(height, width): up to ``side`` x ``side``, plus 1xN and Nx1 up to ``line``."""
    return st.one_of(
        st.tuples(st.integers(1, side), st.integers(1, side)),
        st.tuples(st.just(1), st.integers(1, line)),  # 1xN
        st.tuples(st.integers(1, line), st.just(1)),  # Nx1
    )


@st.composite
def masks(draw, side: int = 40, line: int = 60) -> np.ndarray:
    """Random uint8 0/1 masks: noise (many components, holes), rectangles with holes,
    empty, full, one pixel."""
    h, w = draw(shapes(side, line))
    kind = draw(st.sampled_from(["noise", "blobs", "empty", "full", "pixel"]))
    if kind == "noise":
        return draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    mask = np.full((h, w), kind == "full", np.uint8)
    if kind == "pixel":
        mask[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = 1
    if kind == "blobs":
        for value in draw(st.lists(st.booleans(), min_size=1, max_size=6)):  # 0 = hole
            y0, y1 = sorted(draw(st.tuples(st.integers(0, h), st.integers(0, h))))
            x0, x1 = sorted(draw(st.tuples(st.integers(0, w), st.integers(0, w))))
            mask[y0:y1, x0:x1] = value
    return mask


@st.composite
def canonical_rles(draw) -> tuple[str, tuple[int, int]]:
    """A valid canonical Kaggle RLE (maximal, non-adjacent runs) and its image shape."""
    h, w = draw(shapes())
    bounds = sorted(draw(st.sets(st.integers(0, h * w), max_size=40)))
    bounds = bounds[: len(bounds) // 2 * 2]  # [start0, end, start0, end, ...] all distinct
    pairs = [f"{s + 1} {e - s}" for s, e in zip(bounds[0::2], bounds[1::2])]
    return " ".join(pairs), (h, w)


def run_counts(max_count: int = 2**20, max_size: int = 40):
    """Arbitrary COCO run lengths (zero-length runs included; at least one), as int64 arrays."""
    small = st.integers(0, 12)
    big = st.integers(0, max_count)
    return st.lists(st.one_of(small, big), min_size=1, max_size=max_size).map(lambda c: np.array(c, np.int64))


def pycoco_encode(mask: np.ndarray) -> dict:
    """Reference COCO RLE of a mask, by pycocotools (bytes counts)."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def pycoco_string(counts) -> str:
    """pycocotools' compressed string of run lengths (``rleToString``, via frPyObjects).

    Only for a non-empty list of counts whose written values fit 5 characters: beyond,
    and for no counts, ``rleToString`` writes past its buffer.
    """
    counts = [int(c) for c in counts]
    return mask_utils.frPyObjects({"size": [1, 1], "counts": counts}, 1, 1)["counts"].decode("ascii")


def mask_counts(mask: np.ndarray) -> np.ndarray:
    """COCO run lengths of a mask computed from its pixels alone (column-major transitions)."""
    flat = np.concatenate(([0], mask.ravel(order="F").astype(np.int8)))
    change = np.flatnonzero(np.diff(flat)) + 1
    return np.diff(np.concatenate(([1], change, [flat.size]))).astype(np.int64)


# Synthetic volumes ---------------------------------------------------------------------------------

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
