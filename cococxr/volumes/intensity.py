"""Voxel intensities -> PNG pixels: 16-bit with a recorded rescale, or 8-bit through a CT window.

16-bit (the default) keeps the raw values: ``raw = rescale_slope * png + rescale_intercept``
(the DICOM convention), recorded on every image record. Integer volumes whose range fits
in 65,536 values are stored exactly (slope 1); wider or fractional ones are quantised
onto 0..65535 and the report says so.

8-bit applies a window ``W,L`` (width, level, in the volume's units: Hounsfield units for
CT): values at or below ``L - W/2`` are 0, at or above ``L + W/2`` are 255, linear in
between; the record keeps ``window: [W, L]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cococxr.errors import ConfigError

#: Common CT windows, ``name: (width, level)`` in HU.
WINDOWS = {
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "abdomen": (400.0, 40.0),
    "bone": (1800.0, 400.0),
    "brain": (80.0, 40.0),
}
_NUMBER = r"[-+]?\d+(?:\.\d*)?"
_PAIR = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$")
UINT16_TOP = 65535


def parse_window(spec: str | tuple | list | None) -> tuple[float, float] | None:
    """``"lung"`` or ``"1500,-600"`` (width, level) -> ``(1500.0, -600.0)``; None -> None.

    Raises:
        ConfigError: an unknown name, a malformed pair or a width <= 0.
    """
    if spec is None:
        return None
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ConfigError(f"window {spec!r}: expected (width, level)")
        width, level = (float(v) for v in spec)
    elif str(spec).strip().lower() in WINDOWS:
        width, level = WINDOWS[str(spec).strip().lower()]
    else:
        match = _PAIR.match(str(spec))
        if not match:
            raise ConfigError(f"window {spec!r}: expected one of {', '.join(WINDOWS)} or W,L (width,level), "
                              "e.g. 1500,-600")
        width, level = float(match.group(1)), float(match.group(2))
    if width <= 0:
        raise ConfigError(f"window {spec!r}: the width must be positive")
    return width, level


def apply_window(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """8-bit pixels of raw ``values`` through ``window = (width, level)``."""
    width, level = window
    scaled = (np.asarray(values, dtype=np.float64) - (level - width / 2.0)) * 255.0 / width
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def window_record(window: tuple[float, float]) -> dict:
    """Image-record keys of an 8-bit windowed slice."""
    return {"bit_depth": 8, "window": [float(window[0]), float(window[1])]}


@dataclass(frozen=True)
class Rescale:
    """``raw = slope * png + intercept`` for 16-bit slices.

    Attributes:
        slope, intercept: the linear map from PNG values to raw values.
        exact: True when every raw value is reproduced exactly.
    """

    slope: float
    intercept: float
    exact: bool

    @classmethod
    def for_range(cls, low: float, high: float, integral: bool) -> "Rescale":
        """The rescale for values in ``[low, high]`` (``integral``: all are whole numbers)."""
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ConfigError(f"values range {low}..{high} is not finite")
        if integral and high - low <= UINT16_TOP:
            return cls(1.0, float(low), True)
        slope = (high - low) / UINT16_TOP if high > low else 1.0
        return cls(float(slope), float(low), bool(high == low))

    @classmethod
    def of_volume(cls, volume: np.ndarray) -> "Rescale":
        """The rescale of a whole volume (its min, max and whether it holds whole numbers).

        Raises:
            ConfigError: NaN or infinite values (the caller names the file).
        """
        volume = np.asarray(volume)
        if np.issubdtype(volume.dtype, np.floating):
            if not np.all(np.isfinite(volume)):
                raise ConfigError("the volume has NaN or infinite values")
            integral = bool(np.all(volume == np.floor(volume)))
        else:
            integral = True
        return cls.for_range(float(volume.min()), float(volume.max()), integral)

    @classmethod
    def of_dicom(cls, slope: float, intercept: float, signed: bool) -> "Rescale":
        """The rescale of stored DICOM pixels (shifted by 32768 when signed) with their own slope/intercept."""
        return cls(float(slope), float(intercept) - (32768.0 * float(slope) if signed else 0.0), True)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """16-bit PNG pixels of raw ``values``."""
        values = np.asarray(values)
        if self.slope == 1.0 and np.issubdtype(values.dtype, np.integer):
            return (values.astype(np.int64) - int(self.intercept)).astype(np.uint16)
        scaled = (values.astype(np.float64) - self.intercept) / self.slope
        return np.clip(np.rint(scaled), 0, UINT16_TOP).astype(np.uint16)

    def decode(self, pixels: np.ndarray) -> np.ndarray:
        """Raw values (float64) of PNG ``pixels``."""
        return np.asarray(pixels, dtype=np.float64) * self.slope + self.intercept

    def record(self) -> dict:
        """Image-record keys of a 16-bit slice."""
        return {"bit_depth": 16, "rescale_slope": self.slope, "rescale_intercept": self.intercept}


__all__ = ["WINDOWS", "Rescale", "apply_window", "parse_window", "window_record"]
