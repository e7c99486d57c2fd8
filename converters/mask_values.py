"""Lossy or ambiguous mask files, refused unless a documented policy is chosen (issue 17 class 4).

The mask converters (``convert masks``, ``convert covid-radiography``) apply, per mask file:

- **JPEG** (lossy): an error, since its edges hold values that are neither background nor
  class; ``--allow-lossy-masks`` converts binary masks thresholded at ``--mask-threshold``
  (default :data:`LOSSY_THRESHOLD` = 127: value > 127 is foreground). A class map cannot
  be read from lossy values: a JPEG mask with ``--class-map`` is always an error.
- **Multi-page TIFF**: an error (only page 1 would be read); save one mask per file.
- **EXIF orientation** other than 1 on a mask or its image: an error (OpenCV reads the
  stored pixels, so the mask and a viewer's picture would disagree); rotate the pixels
  and drop the tag. The rule is :mod:`cococxr.exif`'s, applied by :mod:`cococxr.io` to
  every image it reads (so to the converters' images too).
- **Binary masks** (no class map) must hold 0 and at most one other value. Several
  non-zero values (an anti-aliased halo of grays around 255, or labels 1 and 2 that a
  binary conversion would merge) are an error naming the file and the values, unless
  ``--mask-threshold T`` is given: value > T (any channel) is foreground.

Every policy in force is named in the converter's report (:func:`policy_notes`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from cococxr.errors import ConfigError, ConversionError
from cococxr.exif import orientation, orientation_problem

#: Threshold of lossy masks when ``--allow-lossy-masks`` is given without ``--mask-threshold``.
LOSSY_THRESHOLD = 127
_LISTED = 8


@dataclass(frozen=True)
class MaskValuePolicy:
    """How mask values become foreground (picklable).

    Attributes:
        threshold: binary masks: value > threshold is foreground; None: exactly one
            non-zero value is allowed.
        allow_lossy: convert JPEG masks (binary only), thresholded.
        class_map: the conversion uses a class map (exact values, never thresholded).
    """

    threshold: int | None = None
    allow_lossy: bool = False
    class_map: bool = False

    def __post_init__(self):
        if self.threshold is not None:
            if not isinstance(self.threshold, int) or isinstance(self.threshold, bool) or \
                    not 0 <= self.threshold < 65535:
                raise ConfigError(f"mask_threshold must be an integer 0..65534, got {self.threshold!r}")
            if self.class_map:
                raise ConfigError("--mask-threshold applies to binary masks; a class map needs exact values")


def file_facts(path: str) -> tuple[str | None, int, int]:
    """``(format, pages, EXIF orientation)`` of an image file from its header (Pillow)."""
    try:
        with Image.open(path) as image:
            pages = getattr(image, "n_frames", 1)
            return image.format, pages, orientation(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        return None, 1, 1  # unreadable files are named by the reader that follows


def check_mask_file(path: str, policy: MaskValuePolicy) -> bool:
    """Apply the file policies to one mask; return True when it is lossy (and allowed).

    Raises:
        ConversionError: a JPEG mask (without ``--allow-lossy-masks``, or with a class
            map), a multi-page TIFF, or an EXIF orientation other than 1.
    """
    fmt, pages, orientation = file_facts(path)
    if pages > 1:
        raise ConversionError(f"mask {path} is a {fmt} file of {pages} pages; only the first would be read. "
                              "Save one mask per file (one page each)")
    if orientation != 1:
        raise ConversionError(_orientation_message(path, orientation, "mask"))
    if fmt not in ("JPEG", "MPO"):
        return False
    if policy.class_map:
        raise ConversionError(f"mask {path} is a JPEG (lossy): its values are altered around every edge, so a "
                              "class map's exact values cannot be read from it; save the masks as PNG")
    if not policy.allow_lossy:
        raise ConversionError(f"mask {path} is a JPEG (lossy): its edges hold values that are neither 0 nor the "
                              "class value, and any non-zero rule grows the mask; save masks as PNG, or pass "
                              f"--allow-lossy-masks to threshold them (value > --mask-threshold, default "
                              f"{LOSSY_THRESHOLD})")
    return True


def binary_mask(mask: np.ndarray, path: str, policy: MaskValuePolicy, lossy: bool) -> np.ndarray:
    """Foreground (uint8 0/1) of a binary-class mask under the policy.

    Raises:
        ConversionError: no threshold and the mask holds several non-zero values (names
            the file and the values).
    """
    threshold = policy.threshold if policy.threshold is not None else (LOSSY_THRESHOLD if lossy else None)
    if threshold is not None:
        return ((mask.max(axis=2) if mask.ndim == 3 else mask) > threshold).view(np.uint8)
    flat = mask.reshape(-1, mask.shape[2]) if mask.ndim == 3 else mask.ravel()
    if mask.dtype == np.uint8 and mask.ndim == 2:
        values = np.flatnonzero(np.bincount(flat, minlength=256))
    else:
        values = np.unique(flat, axis=0) if mask.ndim == 3 else np.unique(flat)
    nonzero = [v for v in values if np.any(v)]
    if len(nonzero) > 1:
        listed = [_format(v) for v in values]
        shown = ", ".join(listed if len(listed) <= _LISTED else [*listed[:_LISTED - 1], "...", listed[-1]])
        raise ConversionError(
            f"mask {path} holds {len(nonzero)} non-zero values ({shown}); a binary conversion would make them "
            "one class: anti-aliased edges (a halo of grays) would become foreground, or several labels would "
            "merge. Pass --class-map for labels, or --mask-threshold T to keep the pixels above T")
    return (mask.any(axis=2) if mask.ndim == 3 else mask != 0).view(np.uint8)


def policy_notes(policy: MaskValuePolicy, lossy: int, thresholded: int) -> list[str]:
    """The policies in force, as report notes (with how many masks each touched)."""
    if policy.class_map:
        values = "mask values: exact class-map values only (JPEG masks refused)"
    elif policy.threshold is not None:
        values = f"mask values: --mask-threshold {policy.threshold}: value > {policy.threshold} is foreground " \
                 f"({thresholded} mask(s))"
    else:
        values = "mask values: binary masks hold 0 and one other value (several values, e.g. a halo, are refused)"
    lossy_note = (f"lossy (JPEG) masks: allowed, thresholded at > "
                  f"{policy.threshold if policy.threshold is not None else LOSSY_THRESHOLD} ({lossy} mask(s))"
                  if policy.allow_lossy and not policy.class_map else "lossy (JPEG) masks: refused")
    return [values, lossy_note, "multi-page TIFF masks: refused; EXIF orientation other than 1: refused"]


def _orientation_message(path: str, value: int, what: str) -> str:
    return f"{what} {orientation_problem(path, value)}"


def _format(value) -> str:
    return ",".join(str(int(v)) for v in value) if np.ndim(value) else str(int(value))


__all__ = ["LOSSY_THRESHOLD", "MaskValuePolicy", "binary_mask", "check_mask_file",
           "file_facts", "policy_notes"]
