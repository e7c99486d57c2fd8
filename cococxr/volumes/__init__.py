"""Volumes: NIfTI and DICOM series as COCO slices that remember their volume.

- :mod:`.layout`: source voxel array <-> canonical slice stack (orientation, spacing, affine);
- :mod:`.nifti_io`, :mod:`.dicom_series`: reading NIfTI files and DICOM series;
- :mod:`.intensity`: 16-bit rescale and CT windows; :mod:`.labelmaps`: value -> name tables;
- :mod:`.contours`: planar contours -> masks (pixel-centre rule);
- :mod:`.stack`: COCO slices -> label volumes; :mod:`.metrics`: per-volume Dice and HD95 (mm);
- :mod:`.staging`: all-or-nothing folder writes.

The converters (``cococxr convert nifti / rtstruct / dicom-seg``, ``export nifti / dicom-seg``)
live in :mod:`cococxr.converters`.
"""
from .intensity import WINDOWS, Rescale, apply_window, parse_window
from .labelmaps import read_label_map
from .layout import AXES, SliceLayout, dicom_affine, display_orientation
from .metrics import evaluate_volumes, volume_dice, volume_hd95, volume_scores
from .stack import case_volumes, category_values, class_volume, label_volume

__all__ = [
    "AXES",
    "WINDOWS",
    "Rescale",
    "SliceLayout",
    "apply_window",
    "case_volumes",
    "category_values",
    "class_volume",
    "dicom_affine",
    "display_orientation",
    "evaluate_volumes",
    "label_volume",
    "parse_window",
    "read_label_map",
    "volume_dice",
    "volume_hd95",
    "volume_scores",
]
