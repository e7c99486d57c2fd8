"""Run-length encodings: Kaggle "start length" strings and COCO RLE.

Kaggle RLE is a string of 1-indexed ``start length`` pairs over the flattened mask, in
one of two pixel orders:

- ``"row"``: row-major (C order, left to right then top to bottom), e.g. UW-Madison GI
  Tract;
- ``"column"``: column-major (Fortran order, top to bottom then left to right), e.g.
  Data Science Bowl 2018, Airbus Ship Detection, Severstal.

Everything here is vectorised with numpy: no Python loop runs over the runs or pixels.
COCO RLE (compressed strings and uncompressed ``counts`` lists) and polygons go through
pycocotools, the reference implementation. Masks are ``uint8`` arrays of 0/1, shape
``(H, W)``, C-contiguous; on input any non-zero pixel counts as foreground.
"""
from __future__ import annotations

import math
import numbers
import re

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cococxr.errors import CocoFormatError, ConfigError, RLEError

ORDERS = ("row", "column")
_DIGITS_AND_SPACE = b"0123456789 \t\n\r\f\v"
_NOT_DIGIT_OR_SPACE = re.compile(r"[^0-9 \t\n\r\f\v]")
_MAX_TOKEN = 2**62  # larger values cannot be pixel indices; keeps start + length in int64


# --------------------------------------------------------------------------- helpers
def _binary(mask) -> np.ndarray:
    """Return ``mask`` as a C-contiguous uint8 0/1 array of shape (H, W)."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ConfigError(f"a mask must be 2-D (H, W); got shape {array.shape}")
    binary = array if array.dtype == np.bool_ else array != 0
    return np.ascontiguousarray(binary).view(np.uint8)


def _check_size(height, width) -> tuple[int, int]:
    """Validate an image size and return it as Python ints."""
    if not all(isinstance(v, numbers.Integral) and v > 0 for v in (height, width)):
        raise ConfigError(f"image size must be two positive integers; got {height!r}, {width!r}")
    return int(height), int(width)


def _check_order(order: str) -> None:
    """Raise ConfigError unless ``order`` is ``"row"`` or ``"column"``."""
    if order not in ORDERS:
        raise ConfigError(f"RLE pixel order must be 'row' or 'column'; got {order!r}")


def _value_runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a 1-D array into maximal runs of equal values.

    Returns:
        ``(starts, ends, values)``: 0-based start, exclusive end and value of each run.
    """
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [flat.size]))
    return starts, ends, flat[starts]


def _runs_to_counts(starts0: np.ndarray, lengths: np.ndarray, n_pixels: int) -> np.ndarray:
    """Alternating background/foreground counts ``[gap, run, gap, run, ..., tail]``."""
    counts = np.empty(2 * starts0.size + 1, np.int64)
    counts[1::2] = lengths
    counts[0::2] = np.concatenate((starts0, [n_pixels])) - np.concatenate(([0], starts0 + lengths))
    return counts


# ------------------------------------------------------------------------ Kaggle RLE
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


def _decode_span(counts: np.ndarray, height: int, width: int, order: str) -> np.ndarray:
    """Expand alternating counts into a C-order mask.

    Only the rows (``"row"``) or columns (``"column"``) from the first to the last run
    are expanded (and transposed), so a small object in a large image costs little.
    """
    if counts.size == 1:
        return np.zeros((height, width), np.uint8)
    n_lines, line = (width, height) if order == "column" else (height, width)
    first = counts[0] // line  # first line (row or column) holding foreground
    last = (height * width - counts[-1] - 1) // line + 1  # one past the last such line
    span = counts.copy()
    span[0] -= first * line
    span[-1] -= (n_lines - last) * line
    values = np.zeros(span.size, np.uint8)
    values[1::2] = 1
    lines = np.repeat(values, span).reshape(last - first, line)
    if order == "column":
        lines = cv2.transpose(lines)
    if last - first == n_lines:
        return lines
    mask = np.zeros((height, width), np.uint8)
    if order == "row":
        mask[first:last] = lines
    else:
        mask[:, first:last] = lines
    return mask


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
    height, width = _check_size(*shape)
    _check_order(order)
    return _decode_span(_parse_runs(text, height * width)[2], height, width, order)


def kaggle_rle_encode(mask, order: str = "column") -> str:
    """Encode a mask as a Kaggle RLE string.

    Args:
        mask: 2-D array; non-zero pixels are foreground.
        order: ``"column"`` or ``"row"`` pixel order (see ``kaggle_rle_decode``).

    Returns:
        Canonical ``"start length ..."`` string (1-indexed, maximal runs); ``""`` when
        the mask is empty.
    """
    _check_order(order)
    binary = _binary(mask)
    flat = (cv2.transpose(binary) if order == "column" else binary).ravel()
    starts, ends, values = _value_runs(flat)
    foreground = values != 0
    pairs = np.stack((starts[foreground] + 1, ends[foreground] - starts[foreground]), axis=1)
    return " ".join(map(str, pairs.ravel().tolist()))


# -------------------------------------------------------------------------- COCO RLE
def _check_rle_size(segm: dict, height: int | None, width: int | None) -> tuple[int, int]:
    """Validate ``segm["size"]`` (and that it equals the image size when given)."""
    size = segm.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, numbers.Integral) and v > 0 for v in size)):
        raise RLEError(f"COCO RLE 'size' must be [height, width] with positive integers; got {size!r}")
    if height is not None and [int(v) for v in size] != [height, width]:
        raise RLEError(f"COCO RLE size {list(size)} differs from the image size [{height}, {width}]")
    return int(size[0]), int(size[1])


def _compressed_counts(counts: bytes) -> np.ndarray:
    """Decode pycocotools' compressed counts string (vectorised ``rleFrString``).

    Each count is a little-endian run of 5-bit groups in chars 48..111 (0x20 = more
    follows, 0x10 on the last char = negative); from the fourth count on, each one is
    stored as the difference to the count two places before.
    """
    chars = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    if not chars.size:
        return chars
    if chars.min() < 0 or chars.max() > 63:
        raise RLEError(f"compressed COCO RLE counts {counts[:40]!r} contain characters outside '0'..'o'")
    last = (chars & 0x20) == 0  # a count's last char
    if not last[-1]:
        raise RLEError(f"compressed COCO RLE counts {counts[:40]!r} end in the middle of a count")
    firsts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    n_chars = np.diff(np.append(firsts, chars.size))
    if n_chars.max() > 12:
        raise RLEError(f"compressed COCO RLE counts {counts[:40]!r} hold a count over 60 bits")
    shift = 5 * (np.arange(chars.size) - np.repeat(firsts, n_chars))
    values = np.add.reduceat((chars & 0x1f) << shift, firsts)
    negative = (chars[last] & 0x10) != 0
    values -= negative * (np.int64(1) << (shift[last] + 5))
    values[3::2] = np.cumsum(values[1::2])[1:]
    values[4::2] = np.cumsum(values[2::2])[1:]
    return values


def _check_counts(counts: np.ndarray, height: int, width: int, kind: str) -> None:
    """Check that run counts are non-negative and cover exactly height*width pixels."""
    bad = np.flatnonzero(counts < 0)
    if bad.size:
        raise RLEError(f"{kind} COCO RLE counts[{bad[0]}] is {counts[bad[0]]}; expected >= 0")
    if int(counts.sum()) != height * width:
        raise RLEError(f"{kind} COCO RLE counts sum to {int(counts.sum())}; expected "
                       f"height*width = {height}*{width} = {height * width}")


def _pycoco_rle(segm, height: int | None = None, width: int | None = None) -> dict:
    """Validate a COCO RLE dict and return it in pycocotools' form (bytes counts).

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: the image size the RLE must have; None to take it from ``segm``.
    """
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        raise RLEError(f"a COCO RLE must be a dict with 'size' and 'counts'; got {type(segm).__name__}")
    h, w = _check_rle_size(segm, height, width)
    counts = segm["counts"]
    if isinstance(counts, list):
        array = np.asarray(counts)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise RLEError("uncompressed COCO RLE 'counts' must be a flat list of integers")
        _check_counts(array, h, w, "uncompressed")
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    if isinstance(counts, str):
        if not counts.isascii():
            raise RLEError("compressed COCO RLE 'counts' must be an ASCII string")
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise RLEError(f"COCO RLE 'counts' must be a string or a list; got {type(counts).__name__}")
    _check_counts(_compressed_counts(counts), h, w, "compressed")
    return {"size": [h, w], "counts": counts}


def _json_rle(rle: dict) -> dict:
    """pycocotools' RLE (bytes counts) as JSON-ready ``{"size": [h, w], "counts": str}``."""
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _pycoco_from_counts(counts: np.ndarray, height: int, width: int) -> dict:
    """Compress alternating counts ``[gap, run, ..., tail]`` into pycocotools' RLE."""
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools' encoder never ends on an empty background run
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)


def _decode_pycoco(rle: dict, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a validated pycocotools RLE to a C-contiguous uint8 (H, W) mask.

    With ``size`` (height, width), the mask is resized with ``cv2.INTER_NEAREST_EXACT``
    (as :func:`cococxr.preprocess.resize_mask`) before the transpose, which then moves
    only the small array.
    """
    columns = mask_utils.decode(rle).T  # pycocotools decodes in Fortran order: .T is C-contiguous
    if size is not None:
        columns = cv2.resize(columns, (int(size[0]), int(size[1])), interpolation=cv2.INTER_NEAREST_EXACT)
    return cv2.transpose(columns)


def coco_rle_encode(mask) -> dict:
    """Encode a mask as compressed COCO RLE.

    Returns:
        ``{"size": [h, w], "counts": str}`` (the string pycocotools.mask.encode makes).
    """
    binary = _binary(mask)
    return _json_rle(mask_utils.encode(cv2.transpose(binary).T))  # .T of it: Fortran order


def coco_rle_decode(segm: dict, height: int, width: int) -> np.ndarray:
    """Decode a compressed or uncompressed COCO RLE.

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: the image size; ``segm["size"]`` must equal it.

    Returns:
        uint8 0/1 array (height, width).

    Raises:
        RLEError: wrong size, counts that do not cover exactly height*width pixels, or
            a malformed compressed string.
    """
    height, width = _check_size(height, width)
    return _decode_pycoco(_pycoco_rle(segm, height, width))


# -------------------------------------------------------------------------- polygons
def polygon_outside_problem(coords, height: int, width: int) -> str | None:
    """Describe a vertex more than 10 image sizes outside the image, or return None.

    pycocotools allocates memory in proportion to the edge lengths (gigabytes for a vertex
    at 1e8, a crash past 4e8), so such polygons are refused rather than rasterised.
    """
    coords = np.asarray(coords, dtype=np.float64)
    xs, ys = coords[0::2], coords[1::2]
    margin = 10 * max(height, width)
    bad = np.flatnonzero((xs < -margin) | (xs > width + margin) | (ys < -margin) | (ys > height + margin))
    if not bad.size:
        return None
    k = bad[0]
    return (f"has vertex {k} ({xs[k]:g}, {ys[k]:g}) more than 10 image sizes outside the {width}x{height} "
            f"image (x must be in [{-margin}, {width + margin}], y in [{-margin}, {height + margin}])")


def _check_polygons(polygons, height: int, width: int) -> list[list[float]]:
    """Validate COCO polygons for a height x width image and return them as lists of floats."""
    if not isinstance(polygons, (list, tuple)):
        raise CocoFormatError(f"polygons must be a list of coordinate lists; got {type(polygons).__name__}")
    checked = []
    for index, polygon in enumerate(polygons):
        if isinstance(polygon, numbers.Real):
            raise CocoFormatError("polygons must be a list of coordinate lists [[x1, y1, x2, y2, "
                                  "...], ...]; got a flat list of numbers")
        try:
            coords = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CocoFormatError(f"polygon {index} has non-numeric coordinates: {exc}") from exc
        if coords.ndim != 1 or coords.size < 6 or coords.size % 2:
            raise CocoFormatError(f"polygon {index} has {coords.size} coordinates; expected an even "
                                  f"number >= 6 (x1, y1, x2, y2, x3, y3, ...)")
        if not np.isfinite(coords).all():
            raise CocoFormatError(f"polygon {index} has non-finite coordinates")
        outside = polygon_outside_problem(coords, height, width)
        if outside:
            raise CocoFormatError(f"polygon {index} {outside}")
        checked.append(coords.tolist())
    return checked


def _polygons_rle(polygons, height: int, width: int) -> dict:
    """Rasterise validated polygons (unioned) to pycocotools' RLE."""
    checked = _check_polygons(polygons, height, width)
    if not checked:
        return _pycoco_from_counts(np.array([height * width]), height, width)
    return mask_utils.merge(mask_utils.frPyObjects(checked, height, width))


def _segmentation_rle(segmentation, height: int, width: int, validated: bool = False) -> dict:
    """Any COCO segmentation as pycocotools' RLE (bytes counts), validated.

    ``validated``: the segmentation comes from a validated CocoDataset, so a compressed
    RLE is handed over as it is (its counts were checked when the dataset was loaded;
    an RLE size written as [width, height] is read as [height, width], as validation does).
    """
    if validated and isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if isinstance(segmentation, dict):
        return _pycoco_rle(segmentation, height, width)
    if isinstance(segmentation, (list, tuple)):
        return _polygons_rle(segmentation, height, width)
    raise CocoFormatError(f"segmentation must be a list of polygons or an RLE dict with 'size' and "
                          f"'counts'; got {type(segmentation).__name__}")


def polygons_to_mask(polygons, height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` (unioned) with pycocotools.

    Raises:
        CocoFormatError: a polygon has an odd number or fewer than 6 coordinates, or
            non-numeric / non-finite values.
    """
    height, width = _check_size(height, width)
    return _decode_pycoco(_polygons_rle(polygons, height, width))


def segmentation_to_rle(segmentation, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygons or RLE) as compressed RLE with str counts.

    This is the raster pycocotools evaluates (``COCO.annToRLE``); its ``rle_area`` and
    ``rle_bbox`` are the annotation's ``area`` and ``bbox``.

    Raises:
        RLEError / CocoFormatError: as ``segmentation_to_mask``.
    """
    height, width = _check_size(height, width)
    return _json_rle(_segmentation_rle(segmentation, height, width))


def segmentation_to_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO ``segmentation``: polygons, compressed RLE or uncompressed RLE.

    Raises:
        RLEError: an RLE is malformed or its size differs from (height, width).
        CocoFormatError: polygons are malformed or the value is neither form.
    """
    height, width = _check_size(height, width)
    return _decode_pycoco(_segmentation_rle(segmentation, height, width))


def rle_area(rle: dict) -> int:
    """Foreground pixel count of a COCO RLE (compressed or uncompressed), by pycocotools."""
    return int(mask_utils.area(_pycoco_rle(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """Bounding box ``[x, y, w, h]`` of a COCO RLE, by pycocotools (zeros when empty)."""
    return [float(v) for v in mask_utils.toBbox(_pycoco_rle(rle))]


__all__ = [
    "ORDERS",
    "parse_kaggle_rle",
    "kaggle_rle_decode",
    "kaggle_rle_encode",
    "coco_rle_encode",
    "coco_rle_decode",
    "polygons_to_mask",
    "segmentation_to_rle",
    "segmentation_to_mask",
    "rle_area",
    "rle_bbox",
]
