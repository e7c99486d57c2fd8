"""COCO RLE counts: the compressed string codec and the checks of counts against a size.

COCO RLE counts alternate background and foreground run lengths over the column-major
(Fortran order) flattened mask, starting with background. pycocotools stores them as
32-bit unsigned ints and writes them as a string (``rleToString`` / ``rleFrString`` in
cocoapi's common/maskApi.c), LEB128-like with 5 value bits per character:

- each count becomes one or more 5-bit chunks, least significant first, each written as
  the character ``chr(48 + chunk)``, so every character is in ``'0'..'o'`` (48..111);
- bit 0x20 of a chunk is the continuation bit: another chunk of the same count follows;
- bit 0x10 of a count's last chunk is its sign bit: the value is sign-extended from
  ``5 * n_chunks`` bits;
- delta rule: from the fourth count on (0-based index ``i >= 3``), the value written is
  ``counts[i] - counts[i - 2]``, so decoding adds it back: ``counts[i] += counts[i - 2]``.
  The first three counts are written as they are.

:func:`decode_counts` is the project's only decoder of that string. It rejects, with an
RLEError naming the character or count, exactly these inputs:

1. not ASCII text (``str`` or ``bytes``);
2. a character outside ``'0'..'o'``;
3. a truncated count: the last character has the continuation bit 0x20 set;
4. a count written with more than 7 characters (35 bits; pycocotools' encoder never
   needs more for 32-bit counts, and its decoder overflows beyond);
5. a decoded count below 0 or above ``MAX_COUNT`` (``2**32 - 1``).

The empty string decodes to no counts. Whether the counts cover the image, i.e. sum to
``height * width``, is checked by :func:`check_counts` (and :func:`rle_counts`).
"""
from __future__ import annotations

import numbers

import numpy as np
from pycocotools import mask as mask_utils

from cococxr.errors import RLEError

#: Largest run length: pycocotools stores counts as 32-bit unsigned ints.
MAX_COUNT = 2**32 - 1
#: Most characters one count may take in a compressed string (7 chunks of 5 bits).
MAX_CHARS_PER_COUNT = 7
_FIRST, _LAST = ord("0"), ord("o")
_FIVE_CHARS = 2**24  # written values in (-2**24, 2**24) take at most 5 characters


def _snippet(text: bytes) -> str:
    """The start of a counts string, for messages."""
    shown = text[:40].decode("ascii", errors="replace")
    return repr(shown + "..." if len(text) > 40 else shown)


def decode_counts(text: str | bytes) -> np.ndarray:
    """Decode a compressed COCO RLE counts string (pycocotools' ``rleFrString``, vectorised).

    Args:
        text: the ``counts`` string of a compressed RLE, ``str`` or ``bytes``.

    Returns:
        int64 run lengths ``[background, foreground, background, ...]``.

    Raises:
        RLEError: one of the rejected inputs listed in the module docstring, naming the
            character position or the count index.
    """
    if isinstance(text, str):
        if not text.isascii():
            raise RLEError("compressed COCO RLE 'counts' must be an ASCII string")
        text = text.encode("ascii")
    elif not isinstance(text, bytes):
        raise RLEError(f"compressed COCO RLE 'counts' must be a string; got {type(text).__name__}")
    raw = np.frombuffer(text, np.uint8)
    if not raw.size:
        return np.zeros(0, np.int64)
    if raw.min() < _FIRST or raw.max() > _LAST:
        bad = int(np.flatnonzero((raw < _FIRST) | (raw > _LAST))[0])
        raise RLEError(f"compressed COCO RLE counts {_snippet(text)}: character {bad} "
                       f"({chr(raw[bad])!r}) is outside '0'..'o'")
    chars = raw.astype(np.int64) - _FIRST
    last = (chars & 0x20) == 0  # a count's last chunk: no continuation bit
    firsts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    if not last[-1]:
        raise RLEError(f"compressed COCO RLE counts {_snippet(text)}: ends in the middle of a count "
                       f"(counts[{firsts.size - 1}]: the last character has the continuation bit 0x20)")
    n_chars = np.diff(np.append(firsts, chars.size))
    if n_chars.max() > MAX_CHARS_PER_COUNT:
        k = int(np.argmax(n_chars > MAX_CHARS_PER_COUNT))
        raise RLEError(f"compressed COCO RLE counts {_snippet(text)}: counts[{k}] takes {n_chars[k]} "
                       f"characters, at most {MAX_CHARS_PER_COUNT} (overflows pycocotools' 32-bit counts)")
    shift = 5 * (np.arange(chars.size) - np.repeat(firsts, n_chars))
    values = np.add.reduceat((chars & 0x1f) << shift, firsts)
    values -= ((chars[last] & 0x10) != 0) * (np.int64(1) << (shift[last] + 5))  # sign-extend
    # Delta rule: counts[i] += counts[i - 2] for i >= 3, i.e. running sums over each parity
    # that leave counts[0] and counts[2] as written (cumsum reads before the assignment).
    values[3::2] = np.cumsum(values[1::2])[1:]
    values[4::2] = np.cumsum(values[2::2])[1:]
    _check_range(values, f"compressed COCO RLE counts {_snippet(text)}: ")
    return values


def encode_counts(counts) -> str:
    """Compress run lengths into the COCO RLE string (pycocotools' ``rleToString``).

    The result is byte for byte what pycocotools writes for the same counts. Counts whose
    written values all fit in 5 characters go through pycocotools' C encoder (fastest for
    the short counts of typical masks); others through :func:`_encode_wide`, because
    ``rleToString`` allocates 6 characters per count and overruns that buffer when a
    written value needs 6 (plus the final NUL) or 7.

    Args:
        counts: 1-D run lengths, each in ``0..MAX_COUNT``.

    Raises:
        RLEError: a count is out of range or the counts are not 1-D.
    """
    try:
        counts = np.asarray(counts, dtype=np.int64)
    except (OverflowError, TypeError, ValueError) as exc:
        raise RLEError(f"COCO RLE counts must be integers in 0..{MAX_COUNT}: {exc}") from exc
    if counts.ndim != 1:
        raise RLEError(f"COCO RLE counts must be 1-D; got shape {counts.shape}")
    _check_range(counts, "COCO RLE ")
    if not counts.size:
        return ""  # (pycocotools would write its terminating NUL past a 0-byte buffer)
    values = counts.copy()
    values[3:] -= counts[1:-2]  # the delta rule
    if np.abs(values).max() < _FIVE_CHARS:
        # The size is only stored beside the counts; it does not change the string.
        return mask_utils.frPyObjects({"size": [1, 1], "counts": counts}, 1, 1)["counts"].decode("ascii")
    return _encode_wide(values)


def _encode_wide(values: np.ndarray) -> str:
    """The string of written values (after the delta rule), in numpy, for any count width."""
    magnitude = np.where(values < 0, ~values, values)
    n_chars = np.ones(values.size, np.int64)  # 5 bits per char, the last one's 0x10 the sign
    for k in range(1, MAX_CHARS_PER_COUNT):
        n_chars += magnitude >= (np.int64(1) << (5 * k - 1))
    owner = np.repeat(np.arange(values.size), n_chars)
    position = np.arange(owner.size) - np.repeat(np.cumsum(n_chars) - n_chars, n_chars)
    chunks = (values[owner] >> (5 * position)) & 0x1f  # arithmetic shift: sign-extends
    chunks |= (position < n_chars[owner] - 1) * 0x20
    return (chunks + _FIRST).astype(np.uint8).tobytes().decode("ascii")


def _range_error(prefix: str, k: int, count: int) -> RLEError:
    """The RLEError for ``counts[k]`` outside 0..MAX_COUNT."""
    expected = ">= 0" if count < 0 else f"<= {MAX_COUNT} (pycocotools' counts are 32-bit)"
    return RLEError(f"{prefix}counts[{k}] is {count}; expected {expected}")


def _check_range(counts: np.ndarray, prefix: str) -> None:
    """Raise RLEError naming the first count below 0 or above MAX_COUNT."""
    if counts.size and (counts.min() < 0 or counts.max() > MAX_COUNT):
        k = int(np.flatnonzero((counts < 0) | (counts > MAX_COUNT))[0])
        raise _range_error(prefix, k, int(counts[k]))


def uncompressed_counts(counts) -> np.ndarray:
    """Check uncompressed COCO RLE counts (a list of ints) and return them as int64.

    Raises:
        RLEError: not a flat list of integers (bool excluded), or a count below 0 or above
            ``MAX_COUNT``; the message names the first bad item.
    """
    if not isinstance(counts, list):
        raise RLEError(f"uncompressed COCO RLE 'counts' must be a flat list of integers; "
                       f"got {type(counts).__name__}")
    for k, count in enumerate(counts):
        if not isinstance(count, numbers.Integral) or isinstance(count, (bool, np.bool_)):
            raise RLEError(f"uncompressed COCO RLE counts[{k}] is {count!r}; expected a flat list of "
                           f"integers >= 0")
        if not 0 <= count <= MAX_COUNT:
            raise _range_error("uncompressed COCO RLE ", k, int(count))
    return np.array(counts, dtype=np.int64)


def parse_counts(counts) -> np.ndarray:
    """Run lengths of COCO RLE ``counts``: a compressed string (str or bytes) or a list.

    Raises:
        RLEError: as :func:`decode_counts` / :func:`uncompressed_counts`, or another type.
    """
    if isinstance(counts, (str, bytes)):
        return decode_counts(counts)
    if isinstance(counts, list):
        return uncompressed_counts(counts)
    raise RLEError(f"COCO RLE 'counts' must be a string or a list; got {type(counts).__name__}")


def check_counts(counts: np.ndarray, height: int, width: int, kind: str = "compressed") -> None:
    """Check that run lengths are non-negative and cover exactly ``height * width`` pixels.

    Raises:
        RLEError: naming the first negative count, or the sum and the expected one.
    """
    bad = np.flatnonzero(counts < 0)
    if bad.size:
        raise RLEError(f"{kind} COCO RLE counts[{bad[0]}] is {counts[bad[0]]}; expected >= 0")
    if int(counts.sum()) != height * width:
        raise RLEError(f"{kind} COCO RLE counts sum to {int(counts.sum())}; expected "
                       f"height*width = {height}*{width} = {height * width}")


def check_rle_size(segm: dict, height: int | None = None, width: int | None = None) -> tuple[int, int]:
    """Validate ``segm["size"]`` (and that it equals the image size when given).

    Returns:
        ``(height, width)`` of the RLE.
    """
    size = segm.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, numbers.Integral) and v > 0 for v in size)):
        raise RLEError(f"COCO RLE 'size' must be [height, width] with positive integers; got {size!r}")
    if height is not None and [int(v) for v in size] != [height, width]:
        raise RLEError(f"COCO RLE size {list(size)} differs from the image size [{height}, {width}]")
    return int(size[0]), int(size[1])


def rle_counts(segm, height: int | None = None, width: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Validate a COCO RLE dict and return its run lengths and size.

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: the image size the RLE must have; None to take it from ``segm``.

    Returns:
        ``(counts, (height, width))``: int64 run lengths summing to height*width.

    Raises:
        RLEError: not such a dict, a bad or different size, malformed counts, or counts
            that do not cover exactly height*width pixels.
    """
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        raise RLEError(f"a COCO RLE must be a dict with 'size' and 'counts'; got {type(segm).__name__}")
    h, w = check_rle_size(segm, height, width)
    raw = segm["counts"]
    counts = parse_counts(raw)
    check_counts(counts, h, w, "uncompressed" if isinstance(raw, list) else "compressed")
    return counts, (h, w)


__all__ = [
    "MAX_COUNT",
    "MAX_CHARS_PER_COUNT",
    "decode_counts",
    "encode_counts",
    "uncompressed_counts",
    "parse_counts",
    "check_counts",
    "check_rle_size",
    "rle_counts",
]
