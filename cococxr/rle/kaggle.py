"""Kaggle RLE: strings of 1-indexed ``start length`` pairs over the flattened mask.

Two pixel orders exist:

- ``"row"``: row-major (C order, left to right then top to bottom), e.g. UW-Madison GI
  Tract;
- ``"column"``: column-major (Fortran order, top to bottom then left to right), e.g.
  Data Science Bowl 2018, Airbus Ship Detection, Severstal.

Everything is vectorised with numpy: no Python loop runs over the runs or pixels.
"""
from __future__ import annotations

import math
import numbers
import re

import cv2
import numpy as np

from cococxr.errors import ConfigError, RLEError
from cococxr.rle.arrays import ORDERS, binary_mask, check_order, check_size, counts_to_mask, value_runs

_DIGITS_AND_SPACE = b"0123456789 \t\n\r\f\v"
_NOT_DIGIT_OR_SPACE = re.compile(r"[^0-9 \t\n\r\f\v]")
_MAX_TOKEN = 2**62  # larger values cannot be pixel indices; keeps start + length in int64


def _as_text(text) -> str | None:
    """Return the RLE text, or None for the empty forms ("", None, NaN, "-1")."""
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    if text is None or (isinstance(text, numbers.Real) and (math.isnan(text) or text == -1)):
        return None
    if not isinstance(text, str):
        raise RLEError(f"Kaggle RLE must be a string of 'start length' pairs; got {type(text).__name__}")
    text = text.strip()
    return None if text in ("", "-1") else text


def _token_error(tokens: list[str], index: int, expected: str) -> RLEError:
    """Build the RLEError naming token ``index`` and what was expected there."""
    role = "start" if index % 2 == 0 else "length"
    return RLEError(f"bad Kaggle RLE token {index} ({tokens[index]!r}, the {role} of run "
                    f"{index // 2}): expected {expected}")


def _token_index(text: str, position: int) -> int:
    """Index of the whitespace-separated token of ``text`` holding character ``position``."""
    index = len(text[:position].split())
    return index - 1 if position and not text[position - 1].isspace() else index


def _normalise_or_raise(text: str) -> str:
    """Replace non-ASCII whitespace by spaces, or raise naming the first non-digit token."""
    odd = _NOT_DIGIT_OR_SPACE.search(text)
    if odd.group().isspace():  # exotic whitespace such as U+00A0
        text = " ".join(text.split())
        odd = _NOT_DIGIT_OR_SPACE.search(text)
    if odd:
        raise _token_error(text.split(), _token_index(text, odd.start()),
                           "a positive integer (digits only)")
    return text


def _parse_integers(text: str) -> np.ndarray:
    """Convert whitespace-separated digit tokens to int64, naming the first bad token."""
    if not text.isascii() or text.encode("ascii").translate(None, _DIGITS_AND_SPACE):
        text = _normalise_or_raise(text)
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    if values.size and values.max() >= _MAX_TOKEN:
        index = int(np.argmax(values >= _MAX_TOKEN))
        raise _token_error(text.split(), index, "an integer below 2**62")
    return values


def _check_runs(text: str, starts: np.ndarray, lengths: np.ndarray,
                n_pixels: int | None) -> None:
    """Raise RLEError naming the first bad start or length.

    Starts are 1-indexed, lengths >= 1, runs strictly increasing, non-overlapping and
    inside ``n_pixels`` pixels (when given).
    """
    tokens = text.split()
    bad = np.flatnonzero(starts < 1)
    if bad.size:
        raise _token_error(tokens, 2 * bad[0], "a 1-indexed start >= 1")
    bad = np.flatnonzero(lengths < 1)
    if bad.size:
        raise _token_error(tokens, 2 * bad[0] + 1, "a run length >= 1")
    ends = starts + lengths  # exclusive, 1-indexed
    bad = np.flatnonzero(starts[1:] <= starts[:-1])
    if bad.size:
        i = bad[0]
        raise _token_error(tokens, 2 * i + 2, f"a start greater than the previous start "
                           f"{starts[i]} (starts must strictly increase)")
    bad = np.flatnonzero(starts[1:] < ends[:-1])
    if bad.size:
        i = bad[0]
        raise _token_error(tokens, 2 * i + 2, f"a start >= {ends[i]}: the previous run covers "
                           f"pixels {starts[i]}..{ends[i] - 1} and runs must not overlap")
    bad = np.flatnonzero(ends - 1 > n_pixels) if n_pixels is not None else []
    if len(bad) and starts[bad[0]] > n_pixels:
        raise _token_error(tokens, 2 * bad[0], f"a start <= {n_pixels}, the image's pixel count")
    if len(bad):
        i = bad[0]
        raise _token_error(tokens, 2 * i + 1, f"a length <= {n_pixels - starts[i] + 1}: the run "
                           f"ends at pixel {ends[i] - 1}, past the last pixel {n_pixels}")


def _parse_runs(text, n_pixels: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse and validate Kaggle RLE text.

    Returns:
        ``(starts0, lengths, counts)``: 0-based starts, lengths, and the alternating
        background/foreground counts ``[gap, run, gap, run, ..., tail]`` covering
        ``n_pixels`` (or up to the last run's end when ``n_pixels`` is None).
    """
    text = _as_text(text)
    values = np.empty(0, np.int64) if text is None else _parse_integers(text)
    if values.size % 2:
        raise RLEError(f"odd number of Kaggle RLE tokens ({values.size}): expected 'start length' "
                       f"pairs, but token {values.size - 1} ({text.split()[-1]!r}) has no length")
    bounds = np.empty(values.size + 2, np.int64)  # 1, start, end, start, end, ..., n + 1
    bounds[0] = 1  # 1-indexed throughout, so that the differences are the counts
    bounds[1:-1] = values
    bounds[2:-1:2] += bounds[1:-1:2]
    bounds[-1] = bounds[-2] if n_pixels is None else n_pixels + 1
    counts = np.diff(bounds)
    lengths = counts[1::2]
    if values.size and (counts[0::2].min() < 0 or lengths.min() < 1):
        _check_runs(text, values[0::2], values[1::2], n_pixels)
    return bounds[1:-1:2] - 1, lengths, counts


def parse_kaggle_rle(text, n_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate a Kaggle RLE string.

    Args:
        text: ``"start length start length ..."`` with 1-indexed starts. ``""``, None,
            NaN and ``"-1"`` mean an empty mask.
        n_pixels: image size in pixels; runs past it are an error. None skips the check.

    Returns:
        ``(starts0, lengths)``: int64 arrays, starts 0-based.

    Raises:
        RLEError: naming the bad token (index and value) and what was expected there.
    """
    starts0, lengths, _ = _parse_runs(text, n_pixels)
    return starts0, lengths


def kaggle_rle_decode(text, shape: tuple[int, int], order: str = "column") -> np.ndarray:
    """Decode a Kaggle RLE string to a mask.

    Args:
        text: the RLE string (empty forms as in ``parse_kaggle_rle``).
        shape: ``(height, width)`` of the mask.
        order: ``"column"`` (column-major; DSB 2018, Airbus, Severstal) or ``"row"``
            (row-major; UW-Madison).

    Returns:
        uint8 0/1 array of shape ``(height, width)``, C-contiguous.

    Raises:
        RLEError: the string is malformed or has runs past the image end.
    """
    if len(shape) != 2:
        raise ConfigError(f"shape must be (height, width); got {shape!r}")
    height, width = check_size(*shape)
    check_order(order)
    return counts_to_mask(_parse_runs(text, height * width)[2], height, width, order)


def kaggle_rle_encode(mask, order: str = "column") -> str:
    """Encode a mask as a Kaggle RLE string.

    Args:
        mask: 2-D array; non-zero pixels are foreground.
        order: ``"column"`` or ``"row"`` pixel order (see ``kaggle_rle_decode``).

    Returns:
        Canonical ``"start length ..."`` string (1-indexed, maximal runs); ``""`` when
        the mask is empty.
    """
    check_order(order)
    binary = binary_mask(mask)
    flat = (cv2.transpose(binary) if order == "column" else binary).ravel()
    starts, ends, values = value_runs(flat)
    foreground = values != 0
    pairs = np.stack((starts[foreground] + 1, ends[foreground] - starts[foreground]), axis=1)
    return " ".join(map(str, pairs.ravel().tolist()))


__all__ = ["ORDERS", "parse_kaggle_rle", "kaggle_rle_decode", "kaggle_rle_encode"]
