"""Read NIfTI volumes with nibabel, with errors that name the file and what was expected.

An uncompressed ``.nii`` is memory-mapped (slices are read as they are used); a
``.nii.gz`` is decompressed once per volume. Either way at most one volume per worker
is held in memory, never the dataset. A truncated or corrupt file fails when it is
opened here, before anything of that case is written.
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from cococxr.errors import ConversionError, ImageReadError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Default tolerance (mm) when checking that an image and its labels share one voxel grid.
AFFINE_TOLERANCE = 1e-3


def nifti_stem(path: str | os.PathLike) -> str | None:
    """File name without ``.nii.gz`` / ``.nii``; None for other files."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


@dataclass(eq=False)
class NiftiVolume:
    """A 3-D volume read from a NIfTI file.

    Attributes:
        path: the file.
        data: ``(i, j, k)`` voxel array (a memory map for uncompressed files), after the
            header's scl_slope / scl_inter.
        affine: voxel -> world (RAS mm), the header's sform (else qform).
        disk_dtype: the data type stored in the file.
        channels: number of channels of a 4-D file (1 for a 3-D one).
    """

    path: Path
    data: np.ndarray
    affine: np.ndarray
    disk_dtype: np.dtype
    channels: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """The voxel grid's shape."""
        return tuple(int(s) for s in self.data.shape)


def load_nifti(path: str | os.PathLike, what: str = "volume", channel: int = 0) -> NiftiVolume:
    """Open a NIfTI file and read its voxel data.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        what: how errors name the file (``"image"``, ``"label volume"``).
        channel: the channel of a 4-D file (nnU-Net / MSD multi-modal images).

    Raises:
        ImageReadError: not a NIfTI file, or truncated / corrupt voxel data.
        ConversionError: not 3-D (or 4-D with ``channel`` out of range).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{what} {path}: no such file")
    try:
        image = nib.load(path)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib.error ...
        problem = _gzip_problem(path)
        if problem:
            raise ImageReadError(f"{what} {path}: truncated or corrupt: {problem}; "
                                 "expected a complete .nii.gz") from exc
        raise ImageReadError(f"{what} {path}: not a readable NIfTI file ({exc})") from exc
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 4:
        if not 0 <= channel < shape[3]:
            raise ConversionError(f"{what} {path}: 4-D volume with {shape[3]} channels; channel {channel} "
                                  "does not exist")
    elif len(shape) != 3:
        raise ConversionError(f"{what} {path}: expected a 3-D volume (or 4-D with channels), got shape {shape}")
    disk_dtype = image.get_data_dtype()
    try:
        data = np.asanyarray(image.dataobj)
    except (EOFError, OSError, ValueError, zlib.error) as exc:
        size = int(np.prod(image.shape)) * disk_dtype.itemsize
        raise ImageReadError(f"{what} {path}: truncated or corrupt: the header promises {image.shape} voxels of "
                             f"{disk_dtype} ({size} bytes) but they cannot be read ({exc})") from exc
    data = data.reshape(shape)
    if len(shape) == 4:
        data = data[..., channel]
    affine = np.asarray(image.affine, dtype=np.float64)
    return NiftiVolume(path, data, affine, disk_dtype, shape[3] if len(shape) == 4 else 1)


def _gzip_problem(path: Path) -> str | None:
    """What is wrong with a gzip file's stream (None when it is complete, or not gzip)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return None
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        return f"the gzip stream is broken ({exc})"
    return None


def check_same_grid(image: NiftiVolume, labels: NiftiVolume, tolerance: float = AFFINE_TOLERANCE) -> None:
    """Raise ConversionError unless ``labels`` lies on ``image``'s voxel grid.

    Args:
        tolerance: largest allowed difference of any affine entry (mm).
    """
    if image.shape != labels.shape:
        raise ConversionError(f"label volume {labels.path} has shape {labels.shape} but its image {image.path} "
                              f"has shape {image.shape}; expected the same voxel grid")
    difference = float(np.abs(image.affine - labels.affine).max())
    if difference > tolerance:
        raise ConversionError(
            f"label volume {labels.path} and its image {image.path} have different affines (largest "
            f"difference {difference:.6g} mm > tolerance {tolerance:g}):\n  image  {np.round(image.affine, 4).tolist()}"
            f"\n  labels {np.round(labels.affine, 4).tolist()}\nexpected the same voxel grid "
            "(resample the labels, or raise --affine-tolerance if the difference is rounding)")


def integer_labels(volume: NiftiVolume) -> np.ndarray:
    """The label volume as an integer array.

    Raises:
        ConversionError: fractional, negative or NaN values (names the file and a voxel).
    """
    data = volume.data
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data) | (data != np.floor(data))
        if bad.any():
            where = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ConversionError(f"label volume {volume.path}: value {data[where]} at voxel {list(where)} is not a "
                                  "whole number; expected integer labels")
        data = data.astype(np.int64)
    elif not np.issubdtype(data.dtype, np.integer) and data.dtype != bool:
        raise ConversionError(f"label volume {volume.path}: data type {data.dtype}; expected integer labels")
    if np.issubdtype(data.dtype, np.signedinteger) and data.min() < 0:
        where = tuple(int(v) for v in np.argwhere(data < 0)[0])
        raise ConversionError(f"label volume {volume.path}: negative value {data[where]} at voxel {list(where)}; "
                              "expected labels >= 0")
    return data


__all__ = ["AFFINE_TOLERANCE", "NIFTI_SUFFIXES", "NiftiVolume", "check_same_grid", "integer_labels", "load_nifti",
           "nifti_stem"]
