"""COCO slices of a DICOM series -> DICOM-SEG (``cococxr export dicom-seg``), written with highdicom.

For every case of a COCO made from a DICOM series (``convert rtstruct`` / ``dicom-seg``:
its images carry ``series_uid`` and ``sop_instance_uid``), the series is found in
``--series`` by SeriesInstanceUID and a BINARY SEG with one segment per category is
written as ``<case_id>.dcm``. Segment numbers are 1..K in ``label_value`` order;
labels and coded properties come from the categories (``segment_category``,
``segment_type``, else SCT Tissue and a local code naming the category). Empty frames
are left out, overlapping segments are kept.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from cococxr._version import __version__
from cococxr.atomic import atomic_open
from cococxr.coco import CocoDataset
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConversionError, ImageReadError
from cococxr.volumes.dicom_series import DicomSeries, scan_folder
from cococxr.volumes.stack import CaseVolume, case_volumes, category_values, class_volume
from cococxr.volumes.staging import StagedFolder

from .common import ConversionReport

_ALGORITHM_TYPES = ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC")


@dataclass
class ExportDicomSegOptions:
    """Options of :func:`export_dicom_seg` and ``cococxr export dicom-seg``."""

    coco: Any = option(None, "COCO JSON made from a DICOM series (convert rtstruct / dicom-seg)", positional=True,
                       required=True, role="input")
    out: PathArg | None = option(None, "folder for the SEG files (<case_id>.dcm)", required=True,
                                 role="output")
    series: PathArg | None = option(None, "folder holding the DICOM series the COCO was made from", required=True)
    cases: list[str] | None = option(None, "only these case ids (default: all)")
    algorithm_type: str = option("MANUAL", "SegmentAlgorithmType of categories that do not record one",
                                 choices=_ALGORITHM_TYPES)
    series_description: str = option("cococxr segmentation", "SeriesDescription of the SEG")


def _code(value, default) -> hd.sr.CodedConcept:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(value):
        return hd.sr.CodedConcept(value=str(value[0]), scheme_designator=str(value[1]), meaning=str(value[2]))
    return default


def segment_descriptions(dataset: CocoDataset, cat_ids: list[int], default_algorithm: str) -> list:
    """highdicom SegmentDescription of each category (segment numbers 1..K)."""
    descriptions = []
    for number, cat_id in enumerate(cat_ids, start=1):
        cat = dataset.cats[cat_id]
        algorithm = str(cat.get("segment_algorithm_type") or default_algorithm)
        identification = None if algorithm == "MANUAL" else hd.AlgorithmIdentificationSequence(
            name="cococxr", family=codes.cid7162.ArtificialIntelligence, version=__version__)
        local = hd.sr.CodedConcept(value=f"C{cat.get('label_value', cat_id)}", scheme_designator="99COCOCXR",
                                   meaning=str(cat["name"])[:64])
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=str(cat["name"])[:64],
            segmented_property_category=_code(cat.get("segment_category"), codes.SCT.Tissue),
            segmented_property_type=_code(cat.get("segment_type"), local),
            algorithm_type=algorithm, algorithm_identification=identification))
    return descriptions


def _series_images(dataset: CocoDataset, case: CaseVolume, folder_series: dict[str, DicomSeries],
                   where: str) -> tuple[DicomSeries, list[pydicom.Dataset]]:
    """The case's series and its datasets in slice order; every COCO slice must be one of them."""
    ids = [i for i in case.image_ids if i is not None]
    records = [dataset.imgs[i] for i in ids]
    lacking = [i for i, r in zip(ids, records) if not r.get("series_uid") or not r.get("sop_instance_uid")]
    if lacking:
        raise ConversionError(f"{dataset.source}: case {case.case_id!r}: image(s) {lacking[:10]} have no series_uid / "
                              "sop_instance_uid; export dicom-seg needs a COCO made from a DICOM series "
                              "(convert rtstruct / dicom-seg)")
    uid = records[0]["series_uid"]
    series = folder_series.get(uid)
    if series is None:
        raise ConversionError(f"case {case.case_id!r}: series {uid} is not in {where} (series there: "
                              f"{sorted(folder_series) or 'none'})")
    index = series.index_of_uid()
    missing = [r["sop_instance_uid"] for r in records if r["sop_instance_uid"] not in index]
    if missing or len(series.slices) != case.layout.num_slices:
        raise ConversionError(f"case {case.case_id!r}: series {uid} in {where} has {len(series.slices)} images; "
                              f"the COCO has {case.layout.num_slices}" +
                              (f", {len(missing)} of them missing there (e.g. {missing[0]})" if missing else ""))
    datasets = []
    for item in series.slices:
        try:
            datasets.append(pydicom.dcmread(item.path))
        except Exception as exc:  # pydicom raises many types on corrupt files
            raise ImageReadError(f"{item.path}: not a readable DICOM file ({exc})") from exc
    return series, datasets


def _frames(dataset: CocoDataset, case: CaseVolume, series: DicomSeries, cat_ids: list[int]) -> np.ndarray:
    """``(series slices, rows, columns, K)`` bool masks in the series' slice order and pixel layout."""
    stack = class_volume(dataset, case, cat_ids)  # canonical (D, H, W, K)
    frames = np.zeros((len(series.slices), series.rows, series.columns, len(cat_ids)), bool)
    for k in range(len(cat_ids)):
        source = case.layout.to_source(stack[..., k])  # (columns, rows, slices)
        frames[..., k] = np.transpose(source, (2, 1, 0)) != 0
    return frames


@contextlib.contextmanager
def _quiet_highdicom():
    """Hide highdicom's per-module "copy attributes" log lines and its opinion of the source's PatientName."""
    logger = logging.getLogger("highdicom")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
            yield
    finally:
        logger.setLevel(level)


def _segmentation(images: list, frames: np.ndarray, descriptions: list, series_uid: str, description: str):
    """The highdicom Segmentation of ``frames``; its UIDs derive from the series and the masks (reruns agree)."""
    digest = hashlib.sha256(np.packbits(frames).tobytes()).hexdigest()
    return hd.seg.Segmentation(
        source_images=images, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(entropy_srcs=[series_uid, digest, "series"]),
        series_number=900, sop_instance_uid=generate_uid(entropy_srcs=[series_uid, digest, "instance"]),
        instance_number=1, manufacturer="cococxr", manufacturer_model_name="cococxr export dicom-seg",
        software_versions=__version__, device_serial_number="0", series_description=description,
        # an empty SpecificCharacterSet means the default repertoire, which ISO_IR 100 extends
        specific_character_set=images[0].get("SpecificCharacterSet") or "ISO_IR 100")


def export_dicom_seg(coco: PathArg | CocoDataset, **options) -> ConversionReport:
    """Write one DICOM-SEG per case of ``coco``.

    Raises:
        ConversionError: images not from a DICOM series, a series missing from
            ``series`` or with other images; nothing is written then.
    """
    opts = load_options(ExportDicomSegOptions, coco=coco, **options)
    dataset = coco if isinstance(coco, CocoDataset) else CocoDataset(coco)
    values = category_values(dataset)
    cat_ids = sorted(values, key=lambda c: values[c])
    if not cat_ids:
        raise ConversionError(f"{dataset.source}: no category to write as a segment")
    cases = case_volumes(dataset, opts.cases)
    found = scan_folder(opts.series)
    report = ConversionReport(source=str(dataset.source), output=str(opts.out))
    report.add("cases in", len(cases))
    descriptions = segment_descriptions(dataset, cat_ids, opts.algorithm_type)
    with StagedFolder(opts.out) as staged:
        for case_id, case in cases.items():
            series, images = _series_images(dataset, case, found.series, str(opts.series))
            frames = _frames(dataset, case, series, cat_ids)
            with _quiet_highdicom():
                seg = _segmentation(images, frames, descriptions, series.uid, opts.series_description)
            with atomic_open(staged.path(f"{case_id}.dcm"), "wb") as fh:
                seg.save_as(fh)
            report.add("SEG files out")
            report.add("frames out", int(seg.NumberOfFrames))
        staged.commit()
    return report



__all__ = ["ExportDicomSegOptions", "export_dicom_seg", "segment_descriptions"]
