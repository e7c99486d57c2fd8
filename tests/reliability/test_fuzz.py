"""Fuzzing: random and mutated inputs may only raise cococxr's documented errors.

Targets: the Kaggle RLE parser, the COCO loader/validator (random mutations of a valid
file), the metadata filter parser, the mask rasteriser and the image decoders. Each also
checks a property of the inputs it accepts (a valid COCO file rasterises, a parsed RLE
re-encodes to the same pixels, ...).

The default run uses a few hundred examples per target; the opt-in long run uses the
"fuzz" hypothesis profile (10,000 examples per target):

    HYPOTHESIS_PROFILE=fuzz nice pytest -m fuzz tests/reliability/test_fuzz.py
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cococxr.coco import CocoDataset, is_label_annotation, validate_dataset
from cococxr.converters.csv_table import CsvTable
from cococxr.converters.filters import parse_filter, select_rows
from cococxr.errors import CococxrError
from cococxr.io import read_image, read_mask
from cococxr.masks import annotation_to_mask, annotations_to_label_map
from cococxr.rle import coco_rle_encode, kaggle_rle_decode, kaggle_rle_encode, parse_kaggle_rle

pytestmark = pytest.mark.fuzz

#: Examples per target: the loaded profile's (10,000 under "fuzz"), at least 200.
EXAMPLES = max(settings.default.max_examples, 200)
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None)
SCRATCH = Path(tempfile.mkdtemp(prefix="cococxr-fuzz-"))

# -------------------------------------------------------------------- garbage
HUGE = st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64 + 7, -2**63, 10**30, 1e308, -1e308, 1e-320])
NUMBERS = st.one_of(st.integers(-5, 300), HUGE, st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8),
                    st.sampled_from(["", "1", "-1", "NaN", "1e999", "0x10", "../a.png", "/etc/passwd", "C:\\x"]))
GARBAGE = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                       max_leaves=10)


def _allowed(call, *args, **kwargs):
    """Run ``call``; return its result, or None when it raised a documented cococxr error."""
    try:
        return call(*args, **kwargs)
    except CococxrError:
        return None


# ----------------------------------------------------------------- Kaggle RLE
RLE_TOKENS = st.one_of(st.integers(-3, 80).map(str), st.integers(0, 2**70).map(str),
                       st.sampled_from(["", "-1", "1.5", "1e3", "x", "٣", "１", "NaN", "+3", "0x1", "\u00a0"]))
RLE_TEXT = st.one_of(
    st.lists(RLE_TOKENS, max_size=12).flatmap(
        lambda toks: st.lists(st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", ","]),
                              min_size=len(toks), max_size=len(toks))
        .map(lambda seps: "".join(t + s for t, s in zip(toks, seps)))),
    st.text(alphabet=st.sampled_from(list("0123456789 -\t\n.e") + ["\u00a0", "é", "\x00"]), max_size=30),
    st.text(max_size=20),
)
RLE_VALUES = st.one_of(RLE_TEXT, st.none(), st.floats(allow_nan=True), st.integers(-2, 5),
                       st.binary(max_size=12), st.lists(st.integers(), max_size=3))


@fuzz_settings
@given(text=RLE_VALUES, height=st.integers(1, 12), width=st.integers(1, 12),
       order=st.sampled_from(["row", "column", "diagonal"]), limit=st.booleans())
def test_kaggle_rle_parser(text, height, width, order, limit):
    n_pixels = height * width if limit else None
    runs = _allowed(parse_kaggle_rle, text, n_pixels)
    mask = _allowed(kaggle_rle_decode, text, (height, width), order)
    if runs is not None and limit:
        starts0, lengths = runs
        assert (np.diff(starts0) > 0).all() and (lengths >= 1).all()
        assert (starts0 + lengths <= n_pixels).all()
    if mask is not None:
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert int(mask.sum()) == int(parse_kaggle_rle(text, height * width)[1].sum())
        again = kaggle_rle_decode(kaggle_rle_encode(mask, order), (height, width), order)
        assert np.array_equal(again, mask)


# ------------------------------------------------------------------ COCO files
def _base_coco() -> dict:
    """A valid dataset with every kind of annotation and extra keys."""
    rle = coco_rle_encode(np.pad(np.ones((3, 4), np.uint8), ((2, 3), (1, 3))))
    return {
        "info": {"description": "fuzz base", "image_root": "."},
        "licenses": [{"id": 1, "name": "CC0"}],
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8, "patient_id": "p1"},
                   {"id": 2, "file_name": "sub/b.png", "height": 8, "width": 8, "view": "PA"},
                   {"id": 3, "file_name": "c.png", "height": 6, "width": 10}],
        "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"},
                       {"id": 2, "name": "COVID-19", "supercategory": "finding"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6], [0, 0, 2, 0, 1, 2]],
             "area": 30, "bbox": [0.0, 0.0, 6.0, 6.0], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": rle, "area": 12,
             "bbox": [1.0, 2.0, 4.0, 3.0], "iscrowd": 0},
            {"id": 3, "image_id": 3, "category_id": 1, "segmentation": {"size": [6, 10], "counts": [8, 3, 49]},
             "area": 3, "bbox": [1.0, 2.0, 1.0, 3.0], "iscrowd": 1},
            {"id": 4, "image_id": 1, "category_id": 2, "iscrowd": 0, "area": 0},
        ],
    }


BASE = _base_coco()


def _paths(node, prefix=()):
    """Every (path) into a JSON tree, the root included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


def _mutate(data, draw) -> None:
    """Apply one random mutation in place: delete, replace, insert, duplicate or retype."""
    paths = [p for p in _paths(data) if p]
    if not paths:
        return
    path = draw(st.sampled_from(paths))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    action = draw(st.sampled_from(["delete", "replace", "replace", "insert", "duplicate", "stringify",
                                   "negate", "nan", "huge"]))
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = draw(GARBAGE)
    elif action == "insert" and isinstance(value, list):
        value.insert(draw(st.integers(0, len(value))), draw(GARBAGE))
    elif action == "insert" and isinstance(value, dict):
        value[draw(st.sampled_from(["id", "image_id", "category_id", "bbox", "segmentation", "area",
                                    "height", "width", "file_name", "name", "size", "counts", "x"]))] = draw(GARBAGE)
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(value))
    elif action == "stringify":
        parent[key] = json.dumps(value, allow_nan=True) if not isinstance(value, str) else value + "x"
    elif action == "negate" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = -value - 1
    elif action == "nan":
        parent[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif action == "huge":
        parent[key] = draw(HUGE)


@st.composite
def mutated_coco(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        _mutate(data, draw)
    return data


def _small(img: dict) -> bool:
    """Whether an image is small enough to rasterise here (a valid record may declare 4 G pixels)."""
    return img["height"] * img["width"] <= 2**20


def _exercise(dataset: CocoDataset) -> None:
    """Use a dataset that loaded and validated: every geometry annotation must rasterise."""
    for ann in dataset.anns.values():
        img = dataset.imgs[ann["image_id"]]
        if not is_label_annotation(ann) and "segmentation" in ann and _small(img):
            mask = annotation_to_mask(ann, img["height"], img["width"])
            assert mask.shape == (img["height"], img["width"])
    for image_id, img in dataset.imgs.items():
        if not _small(img):
            continue
        geometry = [a for a in dataset.anns_for(image_id, geometry=True) if "segmentation" in a]
        annotations_to_label_map(geometry, img["height"], img["width"], list(dataset.cats))
        dataset.image_labels(image_id)
    dataset.summary()
    dataset.to_pycocotools()
    out = SCRATCH / "out.json"
    out.unlink(missing_ok=True)
    if _allowed(dataset.write, out) is None and not out.exists():
        return  # NaN in an extra key: refused, nothing written
    assert CocoDataset(out).dataset["images"] == dataset.dataset["images"]


@fuzz_settings
@given(data=mutated_coco(), as_text=st.booleans(), cut=st.integers(0, 10**6))
def test_coco_loader_and_validator(data, as_text, cut):
    issues = validate_dataset(data)
    if as_text:
        text = json.dumps(data, allow_nan=True)
        if cut % 3 == 0:
            text = text[: cut % (len(text) + 1)]
        path = SCRATCH / "in.json"
        path.write_text(text, encoding="utf-8")
        dataset = _allowed(CocoDataset, path, image_root=SCRATCH)
    else:
        dataset = _allowed(CocoDataset, data, image_root=SCRATCH)
    if dataset is None:
        return
    assert not [i for i in issues if i.severity == "error"] or as_text
    _exercise(dataset)


# ----------------------------------------------------------------- row filters
FILTER_PIECES = st.sampled_from([" ", "view", "age", "finding", "Patient Age", "'Patient Age'", '"', "'", "=",
                                 "==", "!=", "<", "<=", ">", ">=", "in", "not in", "NOT IN", ",", "PA", "71",
                                 "-2", "1e2", "1e999", "nan", "inf", "\t", "\x00", "é", "", "5.5", "..", "+", "e"])
FILTERS = st.one_of(st.lists(FILTER_PIECES, max_size=10).map("".join), st.text(max_size=30))
TABLE = CsvTable("meta.csv", ["view", "age", "finding", "Patient Age"],
                 [["PA", "71", "COVID-19", "30"], ["AP Supine", "", "No Finding", "5.5"],
                  ["L", "30.0", "COVID-19", ""], ["", "1e999", "Pneumonia", "-2"]], [2, 3, 4, 5])


@fuzz_settings
@given(filters=st.lists(st.one_of(FILTERS, st.none(), st.integers()), min_size=1, max_size=3))
def test_filter_parser(filters):
    parsed = [_allowed(parse_filter, f) for f in filters]
    keep = _allowed(select_rows, TABLE, filters)
    if keep is not None:
        assert len(keep) == len(TABLE.rows) and all(isinstance(k, bool) for k in keep)
        assert all(p is not None for p in parsed)


# ------------------------------------------------------------ mask rasteriser
COORD = st.one_of(st.floats(-20, 40, allow_nan=False), st.integers(-5, 30), st.floats(), HUGE,
                  st.sampled_from(["1", None, True, [1, 2]]))
POLYGONS = st.lists(st.lists(COORD, max_size=14), max_size=3)
COUNTS = st.one_of(st.lists(st.one_of(st.integers(-2, 70), HUGE, st.floats(0, 70)), max_size=8),
                   st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=130), max_size=12),
                   st.binary(max_size=8), st.none(), st.integers())
SIZES = st.one_of(st.lists(st.integers(-1, 10), min_size=2, max_size=2),
                  st.lists(st.one_of(st.integers(0, 10), st.floats(), st.text(max_size=2)), max_size=3), st.none())


@st.composite
def annotation(draw):
    height, width = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    kind = draw(st.sampled_from(["polygons", "rle", "valid_rle", "garbage"]))
    if kind == "polygons":
        segmentation = draw(POLYGONS)
    elif kind == "valid_rle":
        bits = draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
        segmentation = coco_rle_encode(np.array(bits, np.uint8).reshape(height, width))
        if draw(st.booleans()):
            segmentation["counts"] = segmentation["counts"][: draw(st.integers(0, len(segmentation["counts"])))]
    elif kind == "rle":
        segmentation = {"size": draw(st.one_of(st.just([height, width]), SIZES)), "counts": draw(COUNTS)}
    else:
        segmentation = draw(GARBAGE)
    ann = {"id": draw(st.integers(1, 9)), "image_id": 1, "category_id": 1, "segmentation": segmentation}
    if draw(st.integers(0, 9)) == 0:
        del ann["segmentation"]
    size = draw(st.one_of(st.just((height, width)), st.tuples(st.integers(-1, 10), st.integers(-1, 10)),
                          st.tuples(st.sampled_from([1.5, "8", None, True]), st.integers(1, 8))))
    return ann, size


@fuzz_settings
@given(case=annotation())
def test_mask_rasteriser(case):
    ann, (height, width) = case
    mask = _allowed(annotation_to_mask, ann, height, width)
    if mask is not None:
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 1}
    label_map = _allowed(annotations_to_label_map, [ann], height, width, [1])
    if mask is not None and label_map is not None:
        assert np.array_equal(label_map, mask)


# ------------------------------------------------------------- image decoders
def _encoded(ext: str, array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(ext, array)
    assert ok
    return buffer.tobytes()


_GRAY = np.arange(96, dtype=np.uint8).reshape(8, 12)
SEEDS = [_encoded(".png", _GRAY), _encoded(".png", _GRAY.astype(np.uint16) * 300), _encoded(".jpg", _GRAY),
         _encoded(".png", np.dstack([_GRAY] * 4)), _encoded(".bmp", _GRAY)]


@st.composite
def mutated_image(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[pos:pos + 8] = bytes(len(data[pos:pos + 8]))
    return bytes(data)


@fuzz_settings
@given(data=mutated_image(), suffix=st.sampled_from([".png", ".jpg", ".dcm", ".bin"]))
def test_image_decoders(data, suffix):
    assume(data)
    path = SCRATCH / f"fuzz{suffix}"
    path.write_bytes(data)
    image = _allowed(read_image, path)
    if image is not None:
        assert image.dtype in (np.uint8, np.uint16) and image.ndim in (2, 3)
    mask = _allowed(read_mask, path)
    if mask is not None:
        assert mask.ndim in (2, 3)
