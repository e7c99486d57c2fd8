"""Hypothesis strategies shared by the RLE and mask tests (masks, Kaggle strings, counts)."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shapes(side: int = 40, line: int = 60):
    """(height, width): up to ``side`` x ``side``, plus 1xN and Nx1 up to ``line``."""
    return st.one_of(
        st.tuples(st.integers(1, side), st.integers(1, side)),
        st.tuples(st.just(1), st.integers(1, line)),  # 1xN
        st.tuples(st.integers(1, line), st.just(1)),  # Nx1
    )


@st.composite
def masks(draw, side: int = 40, line: int = 60) -> np.ndarray:
    """Random uint8 0/1 masks: noise (many components, holes), rectangles with holes,
    empty, full, one pixel."""
    h, w = draw(shapes(side, line))
    kind = draw(st.sampled_from(["noise", "blobs", "empty", "full", "pixel"]))
    if kind == "noise":
        return draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    mask = np.full((h, w), kind == "full", np.uint8)
    if kind == "pixel":
        mask[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = 1
    if kind == "blobs":
        for value in draw(st.lists(st.booleans(), min_size=1, max_size=6)):  # 0 = hole
            y0, y1 = sorted(draw(st.tuples(st.integers(0, h), st.integers(0, h))))
            x0, x1 = sorted(draw(st.tuples(st.integers(0, w), st.integers(0, w))))
            mask[y0:y1, x0:x1] = value
    return mask


@st.composite
def canonical_rles(draw) -> tuple[str, tuple[int, int]]:
    """A valid canonical Kaggle RLE (maximal, non-adjacent runs) and its image shape."""
    h, w = draw(shapes())
    bounds = sorted(draw(st.sets(st.integers(0, h * w), max_size=40)))
    bounds = bounds[: len(bounds) // 2 * 2]  # [start0, end, start0, end, ...] all distinct
    pairs = [f"{s + 1} {e - s}" for s, e in zip(bounds[0::2], bounds[1::2])]
    return " ".join(pairs), (h, w)


def run_counts(max_count: int = 2**20, max_size: int = 40):
    """Arbitrary COCO run lengths (zero-length runs included; at least one), as int64 arrays."""
    small = st.integers(0, 12)
    big = st.integers(0, max_count)
    return st.lists(st.one_of(small, big), min_size=1, max_size=max_size).map(lambda c: np.array(c, np.int64))


def pycoco_encode(mask: np.ndarray) -> dict:
    """Reference COCO RLE of a mask, by pycocotools (bytes counts)."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def pycoco_string(counts) -> str:
    """pycocotools' compressed string of run lengths (``rleToString``, via frPyObjects).

    Only for a non-empty list of counts whose written values fit 5 characters: beyond,
    and for no counts, ``rleToString`` writes past its buffer.
    """
    counts = [int(c) for c in counts]
    return mask_utils.frPyObjects({"size": [1, 1], "counts": counts}, 1, 1)["counts"].decode("ascii")


def mask_counts(mask: np.ndarray) -> np.ndarray:
    """COCO run lengths of a mask computed from its pixels alone (column-major transitions)."""
    flat = np.concatenate(([0], mask.ravel(order="F").astype(np.int8)))
    change = np.flatnonzero(np.diff(flat)) + 1
    return np.diff(np.concatenate(([1], change, [flat.size]))).astype(np.int64)
