"""COCO slices -> NIfTI label volumes (``cococxr export nifti``).

For every case of a COCO made by ``convert nifti`` / ``rtstruct`` / ``dicom-seg``, the
slices are stacked, put back into the source array's layout and written with the
recorded affine as ``<case_id>.nii.gz`` (or the recorded ``label_volume`` name with
``--keep-names``). Voxel values are the categories' ``label_value`` (else a given label
map, else the category id); the data type is the recorded ``label_dtype`` when its
values fit, else uint8 / uint16. A NIfTI label volume -> COCO -> NIfTI round trip is
voxel-identical with the same affine.
"""
from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import nibabel as nib
import numpy as np

from cococxr.atomic import atomic_write_bytes
from cococxr.coco import CocoDataset
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConversionError
from cococxr.paths import check_relative_name
from cococxr.volumes.labelmaps import read_label_map
from cococxr.volumes.stack import OVERLAP_POLICIES, case_volumes, category_values, label_volume
from cococxr.volumes.staging import StagedFolder

from .common import ConversionReport


@dataclass
class ExportNiftiOptions:
    """Options of :func:`export_nifti` and ``cococxr export nifti``."""

    coco: Any = option(None, "COCO JSON made by convert nifti / rtstruct / dicom-seg", positional=True,
                       required=True, role="input")
    out: PathArg | None = option(None, "folder for the label volumes (<case_id>.nii.gz)", required=True,
                                 role="output")
    label_map: str | None = option(None, "value -> name table for categories without label_value")
    cases: list[str] | None = option(None, "only these case ids (default: all)")
    overlap: str = option("error", "two structures on one voxel: error, or let the later annotation win (last)",
                          choices=OVERLAP_POLICIES)
    keep_names: bool = option(False, "name each file as its recorded label_volume (default: <case_id>.nii.gz)")


def _dtype(recorded: str | None, top: int) -> np.dtype:
    if recorded:
        try:
            dtype = np.dtype(recorded)
        except TypeError:
            dtype = None
        if dtype is not None and dtype.kind in "uif" and (dtype.kind == "f" or np.iinfo(dtype).max >= top):
            return dtype
    return np.dtype(np.uint8 if top <= 255 else np.uint16)


def nifti_bytes(data: np.ndarray, affine: np.ndarray, compress: bool = True) -> bytes:
    """An encoded NIfTI-1 file of ``data`` with ``affine`` as sform and qform (code 1, scanner).

    Compressed output is deterministic (gzip without a time stamp).
    """
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    image.header.set_data_dtype(data.dtype)
    buffer = io.BytesIO()
    image.to_file_map(nib.Nifti1Image.make_file_map({"image": buffer, "header": buffer}))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0) if compress else buffer.getvalue()


def _file_name(case_id: str, record: dict, keep_names: bool) -> str:
    name = record.get("label_volume") if keep_names else None
    if not name:
        return f"{case_id}.nii.gz"
    check_relative_name(name, f"case {case_id!r} label_volume")
    name = PurePosixPath(name).name
    return name if name.lower().endswith((".nii", ".nii.gz")) else f"{name}.nii.gz"


def export_nifti(coco: PathArg | CocoDataset, **options) -> ConversionReport:
    """Write one NIfTI label volume per case of ``coco``.

    Returns:
        The report (cases, voxels per label value, files written).

    Raises:
        ConversionError: images that are not slices of a volume, incomplete cases,
            overlapping structures (``overlap="error"``); nothing is written then.
    """
    opts = load_options(ExportNiftiOptions, coco=coco, **options)
    dataset = coco if isinstance(coco, CocoDataset) else CocoDataset(coco)
    label_map = read_label_map(opts.label_map) if opts.label_map else None
    values = category_values(dataset, label_map)
    cases = case_volumes(dataset, opts.cases)
    report = ConversionReport(source=str(dataset.source), output=str(opts.out))
    report.add("cases in", len(cases))
    names: dict[str, str] = {}
    with StagedFolder(opts.out) as staged:
        for case_id, case in cases.items():
            record = dataset.imgs[next(i for i in case.image_ids if i is not None)]
            volume = label_volume(dataset, case, values, opts.overlap)
            dtype = _dtype(record.get("label_dtype"), int(volume.max(initial=0)))
            name = _file_name(case_id, record, opts.keep_names)
            if name in names:
                raise ConversionError(f"cases {names[name]!r} and {case_id!r} would both be written as {name}")
            names[name] = case_id
            gz = name.lower().endswith(".gz")
            atomic_write_bytes(staged.path(name), nifti_bytes(volume.astype(dtype), case.layout.affine, gz))
            report.add("label volumes out")
            report.add("labelled voxels out", int(np.count_nonzero(volume)))
        staged.commit()
    return report



__all__ = ["ExportNiftiOptions", "export_nifti", "nifti_bytes"]
