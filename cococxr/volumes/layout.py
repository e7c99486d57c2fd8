"""Where the slices of a volume come from: source array <-> canonical slice stack.

A *source array* is a 3-D voxel array ``src[i, j, k]`` with an affine that maps voxel
indices to world millimetres in the NIfTI convention (RAS+: x to the patient's Right,
y Anterior, z Superior). A NIfTI file's data array is one; a DICOM series is one too,
as ``src[column, row, slice]`` with the affine built from ImagePositionPatient,
ImageOrientationPatient and PixelSpacing (:func:`dicom_affine`).

Slices are written in a *canonical orientation*, the way a radiologist looks at them
and the way a DICOM series in standard orientation stores its pixels:

========  ======================================  =================  ===============
axis      image columns go to, rows go to          slice index grows  ``orientation``
========  ======================================  =================  ===============
axial     patient's left, posterior (from feet)    superior           ``LPS``
coronal   patient's left, inferior (from front)    posterior          ``LIP``
sagittal  posterior, inferior (from the left)      right              ``PIR``
========  ======================================  =================  ===============

``orientation`` names the directions of (column, row, slice index). The stack
``display[slice, row, column]`` is a transpose and flips of the source array, chosen
from the affine's closest axis codes (nibabel's ``io_orientation``), so that an oblique
acquisition is shown along its closest canonical axes. :class:`SliceLayout` maps one
way and back exactly: no voxel is interpolated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from nibabel.orientations import aff2axcodes, io_orientation

from cococxr.errors import ConfigError, ConversionError

AXES = ("axial", "coronal", "sagittal")

#: Per axis: (RAS axis, sign) of the slice, row and column directions.
_DISPLAY = {
    "axial": ((2, +1), (1, -1), (0, -1)),     # slices S, rows P, columns L
    "coronal": ((1, -1), (2, -1), (0, -1)),   # slices P, rows I, columns L
    "sagittal": ((0, +1), (2, -1), (1, -1)),  # slices R, rows I, columns P
}
_CODES = {(0, +1): "R", (0, -1): "L", (1, +1): "A", (1, -1): "P", (2, +1): "S", (2, -1): "I"}
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def display_orientation(axis: str) -> str:
    """The ``orientation`` code of (column, row, slice) for ``axis`` (``"LPS"`` for axial)."""
    slice_, row, col = _DISPLAY[check_axis(axis)]
    return _CODES[col] + _CODES[row] + _CODES[slice_]


def check_axis(axis: str) -> str:
    """Return ``axis`` or raise ConfigError naming the choices."""
    if axis not in AXES:
        raise ConfigError(f"axis {axis!r}: expected one of {', '.join(AXES)}")
    return axis


def check_affine(affine, what: str) -> np.ndarray:
    """A finite, invertible 4x4 float64 affine, or ConversionError naming ``what``."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ConversionError(f"{what}: expected a finite 4x4 affine, got {np.asarray(affine).tolist()}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ConversionError(f"{what}: the affine {affine.tolist()} is singular (zero voxel size?)")
    return affine


@dataclass(frozen=True)
class SliceLayout:
    """How the canonical slice stack ``display[d, r, c]`` is taken from a source array.

    Attributes:
        shape: the source array's shape ``(i, j, k)``.
        affine: its 4x4 voxel -> world (RAS mm) affine.
        axis: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        perm: the source axis of each display axis (slice, row, column).
        flips: whether each display axis runs backwards along its source axis.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    axis: str
    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @classmethod
    def from_affine(cls, shape: Sequence[int], affine, axis: str = "axial", what: str = "volume") -> "SliceLayout":
        """The layout of a source array of ``shape`` and ``affine`` sliced along ``axis``."""
        check_axis(axis)
        if len(shape) != 3 or min(shape) < 1:
            raise ConversionError(f"{what}: expected a 3-D volume, got shape {tuple(shape)}")
        affine = check_affine(affine, what)
        ornt = io_orientation(affine)  # row i: (RAS axis, +1/-1) of source axis i
        perm, flips = [], []
        for ras_axis, sign in _DISPLAY[axis]:
            source = int(np.flatnonzero(ornt[:, 0] == ras_axis)[0])
            perm.append(source)
            flips.append(bool(ornt[source, 1] != sign))
        return cls(tuple(int(s) for s in shape), affine, axis, tuple(perm), tuple(flips))

    @property
    def num_slices(self) -> int:
        """Number of slices along the axis."""
        return self.shape[self.perm[0]]

    @property
    def slice_shape(self) -> tuple[int, int]:
        """``(height, width)`` of one slice image."""
        return self.shape[self.perm[1]], self.shape[self.perm[2]]

    @property
    def display_shape(self) -> tuple[int, int, int]:
        """``(slices, height, width)`` of the canonical stack."""
        return (self.num_slices, *self.slice_shape)

    @property
    def voxel_sizes(self) -> np.ndarray:
        """Millimetres per step along each source axis."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def spacing(self) -> list[float]:
        """``[slice, row, column]`` mm: the voxel size of the canonical stack."""
        sizes = self.voxel_sizes
        return [float(sizes[p]) for p in self.perm]

    @property
    def source_orientation(self) -> str:
        """The source array's axis codes, e.g. ``"LAS"``."""
        return "".join(aff2axcodes(self.affine))

    @property
    def orientation(self) -> str:
        """The canonical stack's (column, row, slice) codes, e.g. ``"LPS"``."""
        return display_orientation(self.axis)

    def source_index(self, d: int) -> int:
        """Index along the source slice axis of display slice ``d``."""
        if not 0 <= d < self.num_slices:
            raise IndexError(f"slice {d} out of range 0..{self.num_slices - 1}")
        return self.num_slices - 1 - d if self.flips[0] else d

    def display_index(self, k: int) -> int:
        """Display slice of index ``k`` along the source slice axis (its own inverse)."""
        return self.source_index(k)

    def plane_to_display(self, plane: np.ndarray) -> np.ndarray:
        """A source plane (the two non-slice source axes, in source order) as a slice image."""
        rest = [a for a in range(3) if a != self.perm[0]]
        image = plane if rest == [self.perm[1], self.perm[2]] else plane.T
        if self.flips[1]:
            image = image[::-1]
        if self.flips[2]:
            image = image[:, ::-1]
        return image

    def display_to_plane(self, image: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`plane_to_display`."""
        if self.flips[1]:
            image = image[::-1]
        if self.flips[2]:
            image = image[:, ::-1]
        rest = [a for a in range(3) if a != self.perm[0]]
        return image if rest == [self.perm[1], self.perm[2]] else image.T

    def take_slice(self, volume, d: int) -> np.ndarray:
        """Display slice ``d`` of a source array (ndarray, memmap or nibabel array proxy).

        Only that slice is read from a memory-mapped or proxied volume.
        """
        index = [slice(None)] * 3
        index[self.perm[0]] = self.source_index(d)
        return np.ascontiguousarray(self.plane_to_display(np.asarray(volume[tuple(index)])))

    def to_display(self, volume: np.ndarray) -> np.ndarray:
        """The whole canonical stack ``(slices, height, width)`` of a source array."""
        stack = np.transpose(np.asarray(volume), self.perm)
        return stack[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def to_source(self, stack: np.ndarray) -> np.ndarray:
        """The source array of a canonical stack (exact inverse of :meth:`to_display`)."""
        stack = np.asarray(stack)
        if stack.shape != self.display_shape:
            raise ConversionError(f"slice stack of shape {stack.shape}; expected {self.display_shape}")
        stack = stack[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]
        return np.ascontiguousarray(np.transpose(stack, np.argsort(self.perm)))

    def record(self) -> dict:
        """The image-record keys that let the volume be rebuilt (see docs/internals.md)."""
        return {"axis": self.axis, "num_slices": self.num_slices, "spacing": self.spacing,
                "affine": self.affine.tolist(), "volume_shape": list(self.shape),
                "orientation": self.orientation, "source_orientation": self.source_orientation}

    @classmethod
    def from_record(cls, record: dict, what: str = "image") -> "SliceLayout":
        """The layout recorded by :meth:`record` on an image record.

        Raises:
            ConversionError: a key is missing or inconsistent (names ``what``).
        """
        missing = [k for k in ("axis", "affine", "volume_shape") if k not in record]
        if missing:
            raise ConversionError(f"{what}: missing volume key(s) {missing}; was it converted from a volume?")
        if record["axis"] not in AXES:
            raise ConversionError(f"{what}: axis {record['axis']!r} is not one of {', '.join(AXES)}")
        layout = cls.from_affine(record["volume_shape"], record["affine"], record["axis"], what)
        if "num_slices" in record and record["num_slices"] != layout.num_slices:
            raise ConversionError(f"{what}: num_slices {record['num_slices']} disagrees with volume_shape "
                                  f"{record['volume_shape']} along {layout.axis} ({layout.num_slices})")
        return layout


def dicom_affine(position, orientation, pixel_spacing, slice_step) -> np.ndarray:
    """RAS affine of the source array ``src[column, row, slice]`` of a DICOM series.

    Args:
        position: ImagePositionPatient of the first slice (LPS mm).
        orientation: ImageOrientationPatient (row direction, then column direction).
        pixel_spacing: PixelSpacing ``[between rows, between columns]`` mm.
        slice_step: vector (LPS mm) from one slice's position to the next one's.
    """
    iop = np.asarray(orientation, dtype=np.float64)
    row_dir, col_dir = iop[:3], iop[3:]
    lps = np.eye(4)
    lps[:3, 0] = row_dir * float(pixel_spacing[1])   # next column
    lps[:3, 1] = col_dir * float(pixel_spacing[0])   # next row
    lps[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    lps[:3, 3] = np.asarray(position, dtype=np.float64)
    return _LPS_TO_RAS @ lps


def lps_to_ras(points) -> np.ndarray:
    """Patient coordinates (LPS mm, DICOM) as RAS mm (NIfTI); works on ``(..., 3)`` arrays."""
    points = np.array(points, dtype=np.float64)
    points[..., :2] *= -1
    return points


__all__ = ["AXES", "SliceLayout", "check_affine", "check_axis", "dicom_affine", "display_orientation", "lps_to_ras"]
